-- A USING expression computes every row anew: rewrite.
ALTER TABLE orders ALTER COLUMN note TYPE varchar(100) USING upper(note);
