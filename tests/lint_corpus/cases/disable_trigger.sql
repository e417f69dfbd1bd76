-- SHARE ROW EXCLUSIVE for a catalog change: milliseconds once granted.
ALTER TABLE orders DISABLE TRIGGER orders_audit;
