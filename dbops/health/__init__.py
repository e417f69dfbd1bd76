"""Health: checks (one definition of healthy), shared by the apply gates and the monitor."""
