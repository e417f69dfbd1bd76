-- crates.io migration 20170308191449_crate_owners_does_not_need_id (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners DROP COLUMN id;
ALTER TABLE crate_owners DROP CONSTRAINT crate_owners_unique_owner_per_crate;
ALTER TABLE crate_owners ADD PRIMARY KEY (crate_id, owner_id, owner_kind);
DROP INDEX index_crate_owners_crate_id;
CREATE UNIQUE INDEX crate_owners_not_deleted ON crate_owners (crate_id, owner_id, owner_kind) WHERE NOT deleted;

-- migrate:down
ALTER TABLE crate_owners DROP CONSTRAINT crate_owners_pkey;
ALTER TABLE crate_owners ADD CONSTRAINT crate_owners_unique_owner_per_crate UNIQUE (crate_id, owner_id, owner_kind);
ALTER TABLE crate_owners ADD COLUMN id SERIAL PRIMARY KEY;
CREATE INDEX index_crate_owners_crate_id ON crate_owners (crate_id);
DROP INDEX crate_owners_not_deleted;
