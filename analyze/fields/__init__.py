"""The Falco field catalog and the enriched events relation it is computed over."""
