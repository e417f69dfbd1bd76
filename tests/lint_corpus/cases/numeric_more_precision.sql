-- numeric(10,2) to numeric(12,2): only widens, no rewrite.
ALTER TABLE orders ALTER COLUMN amount TYPE numeric(12, 2);
