-- Running clients still use the old name.
ALTER TABLE orders RENAME TO purchases;
