-- A stored generated column is computed for every row: the table is rewritten.
ALTER TABLE orders ADD COLUMN doubled numeric GENERATED ALWAYS AS (amount * 2) STORED;
