-- Renaming a table created in the same file: no client knows it yet.
CREATE TABLE drafts (id bigint PRIMARY KEY);
ALTER TABLE drafts RENAME TO order_drafts;
