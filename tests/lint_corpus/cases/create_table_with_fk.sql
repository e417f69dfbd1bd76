-- A new table referencing orders: no rows to validate.
CREATE TABLE refunds (id bigint PRIMARY KEY, order_id bigint REFERENCES orders (id), amount numeric);
