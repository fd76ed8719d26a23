"""fcap: record syscalls to Parquet with eBPF, replay them through Falco-compatible rules.

The public API is small and lives here; everything else is an implementation
detail of :mod:`fcap.capture` (recording, needs root and bcc) or
:mod:`fcap.analyze` (reading, rules, SQL; pure Python + DuckDB).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fcap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
