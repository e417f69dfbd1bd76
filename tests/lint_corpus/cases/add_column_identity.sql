-- An identity column fills every row from its sequence: the table is rewritten.
ALTER TABLE orders ADD COLUMN number bigint GENERATED ALWAYS AS IDENTITY;
