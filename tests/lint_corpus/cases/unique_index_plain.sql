-- A plain unique index build blocks writes like any other.
CREATE UNIQUE INDEX orders_code_key ON orders (code);
