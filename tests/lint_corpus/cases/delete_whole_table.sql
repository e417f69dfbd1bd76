-- Every row deleted in one transaction.
DELETE FROM orders;
