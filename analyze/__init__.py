"""Reading captures: the enriched events relation, Falco rules, SQL hunting.

Pure Python + DuckDB; never needs root or bcc.
"""
