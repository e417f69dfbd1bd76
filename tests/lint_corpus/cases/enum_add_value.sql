-- Adding an enum value at the end: a catalog change.
ALTER TYPE order_status ADD VALUE 'refunded';
