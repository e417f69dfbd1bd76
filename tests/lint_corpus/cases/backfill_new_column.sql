-- A new column filled for every row in the same transaction.
ALTER TABLE orders ADD COLUMN priority int;
UPDATE orders SET priority = 0;
