"""SQL hunting over captures: the documented views, output formats, error mapping.

:mod:`fcap.analyze.hunt.views` creates the stable, versioned views
(``processes``, ``file_events``, ``socket_events`` ...) in a DuckDB connection
that already holds a capture's ``raw_*`` relations and the enriched ``events``
view; :mod:`fcap.analyze.hunt.formats` writes query results as a terminal
table, CSV, JSON or Parquet; :mod:`fcap.analyze.hunt.errors` turns DuckDB's
exceptions into :class:`fcap.errors.FcapError` messages that point at the query.
"""
