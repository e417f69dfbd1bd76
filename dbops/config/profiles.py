"""Workload profiles: pool defaults for oltp, analytics and mixed workloads, beneath explicit values."""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    # Many short transactions: small warm pools, fail fast, find leaks quickly.
    "oltp": {
        "min_size": 5,
        "max_size": 20,
        "acquire_timeout": "5s",
        "max_idle": "10m",
        "max_lifetime": "1h",
        "leak_detection_threshold": "30s",
        "slow_query_threshold": "1s",
    },
    # Few long queries: fewer connections, patient acquisition, long-held connections are normal.
    "analytics": {
        "min_size": 1,
        "max_size": 8,
        "acquire_timeout": "60s",
        "max_idle": "30m",
        "max_lifetime": "4h",
        "leak_detection_threshold": "30m",
        "slow_query_threshold": "60s",
    },
    "mixed": {
        "min_size": 3,
        "max_size": 15,
        "acquire_timeout": "15s",
        "max_idle": "15m",
        "max_lifetime": "2h",
        "leak_detection_threshold": "5m",
        "slow_query_threshold": "5s",
    },
}


def apply_profile(pool: dict[str, Any]) -> None:
    """Fill the pool keys the plan left out from its profile (default oltp)."""
    for key, value in PROFILES[pool.get("profile", "oltp")].items():
        pool.setdefault(key, value)
