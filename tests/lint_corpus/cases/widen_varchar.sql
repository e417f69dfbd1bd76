-- varchar(100) to varchar(200): binary-coercible, no rewrite; the index on note stays.
ALTER TABLE orders ALTER COLUMN note TYPE varchar(200);
