-- Readers go on during a concurrent refresh.
REFRESH MATERIALIZED VIEW CONCURRENTLY recent_orders;
