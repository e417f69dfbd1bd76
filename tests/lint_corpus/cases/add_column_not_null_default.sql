-- NOT NULL with a constant DEFAULT: a catalog change since PostgreSQL 11.
ALTER TABLE orders ADD COLUMN region text NOT NULL DEFAULT 'eu';
