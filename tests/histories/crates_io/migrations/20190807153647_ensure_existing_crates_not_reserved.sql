-- crates.io migration 2019-08-07-153647_ensure_existing_crates_not_reserved (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE FUNCTION ensure_reserved_name_not_in_use() RETURNS trigger AS $$
BEGIN
    IF canon_crate_name(NEW.name) IN (
        SELECT canon_crate_name(name) FROM crates
    ) THEN
        RAISE EXCEPTION 'crate exists with name %', NEW.name;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_ensure_reserved_name_not_in_use
BEFORE INSERT OR UPDATE ON reserved_crate_names
FOR EACH ROW EXECUTE PROCEDURE ensure_reserved_name_not_in_use();

-- migrate:down
DROP TRIGGER trigger_ensure_reserved_name_not_in_use ON reserved_crate_names;
DROP FUNCTION ensure_reserved_name_not_in_use();
