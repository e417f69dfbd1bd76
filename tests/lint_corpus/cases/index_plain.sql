-- A plain index build holds SHARE: writes wait for the whole build.
CREATE INDEX orders_status_idx ON orders (status);
