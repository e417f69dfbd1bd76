-- crates.io migration 2022-11-23-135139_add-token-scopes (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table api_tokens
    add column crate_scopes text[];

comment on column api_tokens.crate_scopes is 'NULL or an array of crate scope patterns (see RFC #2947)';

alter table api_tokens
    add column endpoint_scopes text[];

comment on column api_tokens.endpoint_scopes is 'An array of endpoint scopes or NULL for the `legacy` endpoint scope (see RFC #2947)';

-- migrate:down
alter table api_tokens
    drop column crate_scopes;

alter table api_tokens
    drop column endpoint_scopes;
