-- clock_timestamp() is volatile: the table is rewritten.
ALTER TABLE orders ADD COLUMN stamped_at timestamptz DEFAULT clock_timestamp();
