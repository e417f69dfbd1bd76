-- A nullable column without a default: a catalog change.
ALTER TABLE orders ADD COLUMN memo text;
