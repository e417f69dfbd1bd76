-- An index name is not used by clients; the rename is a catalog change.
ALTER INDEX orders_created_idx RENAME TO orders_created_at_idx;
