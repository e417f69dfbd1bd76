-- A new scale converts every value: rewrite.
ALTER TABLE orders ALTER COLUMN amount TYPE numeric(12, 4);
