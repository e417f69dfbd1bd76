-- NOT NULL without a DEFAULT fails on any table with rows.
ALTER TABLE orders ADD COLUMN region text NOT NULL;
