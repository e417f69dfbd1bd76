"""dbops: declarative PostgreSQL operations."""

__version__ = "0.1.0"
