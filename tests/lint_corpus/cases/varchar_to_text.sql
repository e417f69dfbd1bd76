-- varchar to text: binary-coercible, no rewrite.
ALTER TABLE orders ALTER COLUMN note TYPE text;
