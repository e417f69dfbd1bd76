-- REFRESH without CONCURRENTLY blocks every read of the view while it recomputes.
REFRESH MATERIALIZED VIEW recent_orders;
