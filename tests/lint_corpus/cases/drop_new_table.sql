-- A scratch table created and dropped in the same file.
CREATE TABLE scratch (id bigint);
INSERT INTO scratch VALUES (1);
DROP TABLE scratch;
