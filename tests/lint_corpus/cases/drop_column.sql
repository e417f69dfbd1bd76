-- Clients still reading the column break, and its data is gone.
ALTER TABLE orders DROP COLUMN payload;
