-- The valid CHECKs events_2026_at_nn and events_2026_bounds prove the bound: PostgreSQL skips the scan.
ALTER TABLE events ATTACH PARTITION events_2026
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
