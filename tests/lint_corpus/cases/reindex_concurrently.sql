-- The concurrent rebuild.
REINDEX TABLE CONCURRENTLY orders;
