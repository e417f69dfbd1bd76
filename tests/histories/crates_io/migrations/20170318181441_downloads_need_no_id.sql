-- crates.io migration 20170318181441_downloads_need_no_id (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_downloads DROP COLUMN id;
ALTER TABLE crate_downloads ALTER COLUMN "date" TYPE date;
ALTER TABLE crate_downloads ADD PRIMARY KEY (crate_id, date);

-- migrate:down
ALTER TABLE crate_downloads DROP CONSTRAINT crate_downloads_pkey
ALTER TABLE crate_downloads ALTER COLUMN "date" TYPE timestamp;
ALTER TABLE crate_downloads ADD COLUMN id SERIAL PRIMARY KEY;
