-- The corpus's tables, the same in the large and the small database; fill.sql puts the rows in
-- (corpus.rows: 100 for the small database, enough for over 1s of estimated blocking for the
-- large one).
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE customers (id bigint PRIMARY KEY, email text);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id bigint,
    ref bigint,
    status order_status,
    note varchar(100),
    amount numeric(10, 2),
    code int CONSTRAINT orders_code_nn CHECK (code IS NOT NULL),
    created_at timestamptz,
    ip cidr,
    payload text
);
CREATE INDEX orders_created_idx ON orders (created_at);
CREATE INDEX orders_note_idx ON orders (note);
CREATE UNIQUE INDEX orders_ref_idx ON orders (ref);
CREATE VIEW order_notes AS SELECT id, note FROM orders;
CREATE SEQUENCE invoice_seq;
CREATE TABLE events (id bigint, at date, payload text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 (id bigint, at date, payload text);
-- Ready to attach: its valid CHECKs prove the bound FOR VALUES FROM ('2026-01-01') TO ('2027-01-01').
CREATE TABLE events_2026 (id bigint, at date CONSTRAINT events_2026_at_nn CHECK (at IS NOT NULL),
                          payload text,
                          CONSTRAINT events_2026_bounds CHECK (at >= '2026-01-01' AND at < '2027-01-01'));
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
