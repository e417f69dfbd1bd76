-- SHARE ROW EXCLUSIVE for a catalog change: milliseconds once granted.
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION touch();
