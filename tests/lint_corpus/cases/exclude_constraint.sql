-- An exclusion constraint builds its index under ACCESS EXCLUSIVE.
ALTER TABLE orders ADD CONSTRAINT orders_code_excl EXCLUDE USING btree (code WITH =);
