-- A new collation keeps the rows but rebuilds the index on note.
ALTER TABLE orders ALTER COLUMN note TYPE varchar(100) COLLATE "C";
