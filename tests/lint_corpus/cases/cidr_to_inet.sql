-- cidr to inet: binary-coercible, no rewrite.
ALTER TABLE orders ALTER COLUMN ip TYPE inet;
