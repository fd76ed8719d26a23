"""Small real captures with expected alerts, shipped as package data ``fcap.samples``."""
