-- SET UNLOGGED rewrites the table.
ALTER TABLE orders SET UNLOGGED;
