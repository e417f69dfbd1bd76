"""What teams plug into their own monitoring: Prometheus rules made from a plan's thresholds (the
ones the apply gates and `dbops health` judge by) and the metrics the Grafana dashboard reads."""
