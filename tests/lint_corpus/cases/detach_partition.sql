-- DETACH without CONCURRENTLY: ACCESS EXCLUSIVE on the parent for a catalog change.
ALTER TABLE events DETACH PARTITION events_2024;
