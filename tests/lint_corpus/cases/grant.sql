-- A grant is a catalog row.
GRANT SELECT ON orders TO PUBLIC;
