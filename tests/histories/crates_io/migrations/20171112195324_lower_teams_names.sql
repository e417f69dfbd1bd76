-- crates.io migration 2017-11-12-195324_lower_teams_names (converted from Diesel's up.sql/down.sql)

-- migrate:up
UPDATE teams SET login=lower(login);
ALTER TABLE teams
    ADD CONSTRAINT teams_login_lowercase_ck
    CHECK (login = lower(login));

-- migrate:down
ALTER TABLE teams
    DROP CONSTRAINT teams_login_lowercase_ck;
