-- Dropping NOT NULL touches only the catalog.
ALTER TABLE orders ALTER COLUMN code DROP NOT NULL;
