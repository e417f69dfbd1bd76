-- A comment is a catalog row.
COMMENT ON TABLE orders IS 'one row per order';
