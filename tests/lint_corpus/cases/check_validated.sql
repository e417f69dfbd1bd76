-- A CHECK validated at once scans under ACCESS EXCLUSIVE.
ALTER TABLE orders ADD CONSTRAINT orders_code_positive CHECK (code > 0);
