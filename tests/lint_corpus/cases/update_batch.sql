-- One batch of a batched backfill.
UPDATE orders SET status = 'paid' WHERE id BETWEEN 1 AND 1000;
