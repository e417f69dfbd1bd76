-- A CHECK added NOT VALID: no scan.
ALTER TABLE orders ADD CONSTRAINT orders_code_positive CHECK (code > 0) NOT VALID;
