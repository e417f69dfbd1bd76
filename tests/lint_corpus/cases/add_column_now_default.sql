-- now() is stable, not volatile: evaluated once, no rewrite.
ALTER TABLE orders ADD COLUMN seen_at timestamptz DEFAULT now();
