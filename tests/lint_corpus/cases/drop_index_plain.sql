-- DROP INDEX takes ACCESS EXCLUSIVE only for the catalog change (bounded by lock_timeout).
DROP INDEX orders_created_idx;
