"""fcap: record syscalls to Parquet with eBPF, replay them through Falco-compatible rules.

The public API is small and lives here; everything else is an implementation
detail of :mod:`fcap.capture` (recording, needs root and bcc) or
:mod:`fcap.analyze` (reading, rules, SQL; pure Python + DuckDB).

>>> import fcap
>>> cap = fcap.open("trace.parquet")            # doctest: +SKIP
>>> cap.sql("SELECT proc_name, count(*) FROM events GROUP BY 1")  # doctest: +SKIP

``fcap.open`` is resolved lazily so that ``import fcap`` stays cheap (no
DuckDB import until a capture is opened).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("fcap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "open"]


def __getattr__(name: str) -> Any:
    if name == "open":
        from fcap.api import open as _open

        return _open
    raise AttributeError(f"module 'fcap' has no attribute {name!r}")
