-- A volatile default is computed for every row: the table is rewritten.
ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();
