-- Clients still using the table break, and its data is gone.
DROP TABLE customers;
