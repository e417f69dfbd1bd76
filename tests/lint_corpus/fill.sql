-- Rows for schema.sql's tables: current_setting('corpus.rows') orders, events_2025, events_2026 rows
-- (the payload makes a row ~1.1 kB, so the large database needs few rows to pass
-- lint.max_blocking), a hundred customers, and the views computed from them.
INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 100) g;
INSERT INTO orders
SELECT g, g % 100 + 1, g, (ARRAY['new', 'paid', 'shipped'])[g % 3 + 1]::order_status,
       'note ' || g, g % 1000, g, '2025-01-01'::timestamptz + g * interval '1 second',
       '10.0.0.0/8', repeat('x', 1000)
FROM generate_series(1, current_setting('corpus.rows')::int) g;
ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount >= 0) NOT VALID;
INSERT INTO events_2025
SELECT g, '2025-01-01'::date + g % 365, repeat('x', 1000)
FROM generate_series(1, current_setting('corpus.rows')::int) g;
INSERT INTO events_2026
SELECT g, '2026-01-01'::date + g % 365, repeat('x', 1000)
FROM generate_series(1, current_setting('corpus.rows')::int) g;
CREATE MATERIALIZED VIEW recent_orders AS SELECT id, customer_id, amount, payload FROM orders;
CREATE UNIQUE INDEX recent_orders_id ON recent_orders (id);
ANALYZE;
