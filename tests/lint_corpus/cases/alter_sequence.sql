-- SHARE ROW EXCLUSIVE on the sequence for a catalog change.
ALTER SEQUENCE invoice_seq RESTART WITH 1000;
