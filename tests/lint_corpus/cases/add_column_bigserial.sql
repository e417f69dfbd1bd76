-- A serial column's default is nextval(): every row gets a value, the table is rewritten.
ALTER TABLE orders ADD COLUMN seq bigserial;
