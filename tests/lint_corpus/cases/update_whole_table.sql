-- Every row locked and rewritten in one transaction.
UPDATE orders SET status = 'paid';
