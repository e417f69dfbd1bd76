-- Changing a column's default touches only the catalog.
ALTER TABLE orders ALTER COLUMN note SET DEFAULT 'none';
