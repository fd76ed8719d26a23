"""Process, fd, user and container state rebuilt from a capture in bulk (DuckDB)."""
