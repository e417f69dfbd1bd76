-- An EXCLUSIVE lock held while a third of the table is updated: writes wait for the whole update.
LOCK TABLE orders IN EXCLUSIVE MODE;
UPDATE orders SET status = 'paid' WHERE status = 'new';
