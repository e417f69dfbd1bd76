-- crates.io migration 2018-04-13-203856_trigger_search_reindex_less (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP TRIGGER trigger_crates_tsvector_update ON crates;

CREATE TRIGGER trigger_crates_tsvector_update BEFORE INSERT OR UPDATE OF updated_at
ON crates
FOR EACH ROW EXECUTE PROCEDURE trigger_crates_name_search();

-- migrate:down
DROP TRIGGER trigger_crates_tsvector_update ON crates;
CREATE TRIGGER trigger_crates_tsvector_update BEFORE INSERT OR UPDATE
ON crates
FOR EACH ROW EXECUTE PROCEDURE trigger_crates_name_search();
