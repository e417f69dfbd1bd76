-- crates.io migration 20170305095748_create_reserved_crate_names (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE reserved_crate_names (
    name TEXT PRIMARY KEY
);
CREATE UNIQUE INDEX ON reserved_crate_names (canon_crate_name(name));
INSERT INTO reserved_crate_names (name) VALUES
    ('alloc'), ('arena'), ('ast'), ('builtins'), ('collections'),
    ('compiler-builtins'), ('compiler-rt'), ('compiletest'), ('core'), ('coretest'),
    ('debug'), ('driver'), ('flate'), ('fmt_macros'), ('grammar'), ('graphviz'),
    ('macro'), ('macros'), ('proc_macro'), ('rbml'), ('rust-installer'), ('rustbook'),
    ('rustc'), ('rustc_back'), ('rustc_borrowck'), ('rustc_driver'), ('rustc_llvm'),
    ('rustc_resolve'), ('rustc_trans'), ('rustc_typeck'), ('rustdoc'), ('rustllvm'),
    ('rustuv'), ('serialize'), ('std'), ('syntax'), ('test'), ('unicode');

CREATE FUNCTION ensure_crate_name_not_reserved() RETURNS trigger AS $$
BEGIN
    IF canon_crate_name(NEW.name) IN (
        SELECT canon_crate_name(name) FROM reserved_crate_names
    ) THEN
        RAISE EXCEPTION 'cannot upload crate with reserved name';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_ensure_crate_name_not_reserved
BEFORE INSERT OR UPDATE ON crates
FOR EACH ROW EXECUTE PROCEDURE ensure_crate_name_not_reserved();

-- migrate:down
DROP TRIGGER trigger_ensure_crate_name_not_reserved ON crates;
DROP FUNCTION ensure_crate_name_not_reserved();
DROP TABLE reserved_crate_names;
