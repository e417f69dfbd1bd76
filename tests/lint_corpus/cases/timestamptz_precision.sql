-- Less fractional precision rounds (rewrites) every row.
ALTER TABLE orders ALTER COLUMN created_at TYPE timestamptz(0);
