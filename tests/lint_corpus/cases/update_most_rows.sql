-- A WHERE clause that still matches two thirds of the table.
UPDATE orders SET status = 'shipped' WHERE status <> 'shipped';
