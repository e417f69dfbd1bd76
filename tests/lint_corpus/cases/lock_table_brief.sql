-- An explicit lock held for a catalog-only change: milliseconds once granted.
LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;
ALTER TABLE orders ADD COLUMN memo text;
