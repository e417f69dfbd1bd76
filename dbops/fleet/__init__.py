"""One plan over many databases: plan every target (bounded threads), group identical
ChangeSets, roll out canary -> soak -> batches with a halt on the first failure, and report
drift and health per target. Each target is a single-database plan (config/fleet.py), run
through the very pipeline a single database goes through."""
