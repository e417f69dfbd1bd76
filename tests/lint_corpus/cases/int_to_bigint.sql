-- int to bigint rewrites the table and its indexes.
ALTER TABLE orders ALTER COLUMN code TYPE bigint;
