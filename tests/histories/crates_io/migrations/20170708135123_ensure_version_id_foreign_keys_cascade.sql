-- crates.io migration 20170708135123_ensure_version_id_foreign_keys_cascade (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE "dependencies"
    DROP CONSTRAINT "fk_dependencies_version_id",
    ADD CONSTRAINT "fk_dependencies_version_id" FOREIGN KEY (version_id) REFERENCES versions(id) ON DELETE CASCADE;
ALTER TABLE "version_authors"
    DROP CONSTRAINT "fk_version_authors_version_id",
    ADD CONSTRAINT "fk_version_authors_version_id" FOREIGN KEY (version_id) REFERENCES versions(id) ON DELETE CASCADE;
ALTER TABLE "version_downloads"
    DROP CONSTRAINT "fk_version_downloads_version_id",
    ADD CONSTRAINT "fk_version_downloads_version_id" FOREIGN KEY (version_id) REFERENCES versions(id) ON DELETE CASCADE;

-- migrate:down
ALTER TABLE "dependencies"
    DROP CONSTRAINT "fk_dependencies_version_id",
    ADD CONSTRAINT "fk_dependencies_version_id" FOREIGN KEY (version_id) REFERENCES versions(id);
ALTER TABLE "version_authors"
    DROP CONSTRAINT "fk_version_authors_version_id",
    ADD CONSTRAINT "fk_version_authors_version_id" FOREIGN KEY (version_id) REFERENCES versions(id);
ALTER TABLE "version_downloads"
    DROP CONSTRAINT "fk_version_downloads_version_id",
    ADD CONSTRAINT "fk_version_downloads_version_id" FOREIGN KEY (version_id) REFERENCES versions(id);
