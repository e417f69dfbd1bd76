-- SET NOT NULL scans the whole table under ACCESS EXCLUSIVE.
ALTER TABLE orders ALTER COLUMN note SET NOT NULL;
