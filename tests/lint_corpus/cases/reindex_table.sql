-- REINDEX rebuilds every index of the table while writes wait.
REINDEX TABLE orders;
