-- ADD UNIQUE builds its index under ACCESS EXCLUSIVE.
ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code);
