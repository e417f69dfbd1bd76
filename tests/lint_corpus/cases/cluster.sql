-- CLUSTER rewrites the table under ACCESS EXCLUSIVE.
CLUSTER orders USING orders_pkey;
