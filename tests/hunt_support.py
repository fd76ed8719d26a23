"""Shared helpers of the hunting tests (test_api, test_views, test_sql_cli, test_hunting_doc,
test_notebook): the scripted sample capture and a stand-in for modules not merged yet.

The stand-in is used only while ``fcap.analyze.enrich`` is not importable: a minimal
``events`` view with the columns the hunting tests read, so that the hunting views and
the CLI can be tested on their own. Once the real module exists it is always used.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import fcap.api

#: ``FCAP_HUNT_FALLBACK=1`` forces the stand-in (to test the hunting layer alone).
FORCE_FALLBACK = os.environ.get("FCAP_HUNT_FALLBACK", "") not in ("", "0")
HAVE_ENRICH = (
    importlib.util.find_spec("fcap.analyze.enrich") is not None and not FORCE_FALLBACK
)
HAVE_CATALOG = importlib.util.find_spec("fcap.analyze.fields.catalog") is not None

_FALLBACK_EVENTS = """
CREATE OR REPLACE VIEW events AS
SELECT row_number() OVER (ORDER BY ts, pid, tid) AS evt_num, ts, syscall AS evt_type,
       pid AS proc_pid, comm AS proc_name,
       comm || coalesce(' ' || array_to_string(argv[2:], ' '), '') AS proc_cmdline,
       coalesce(path, raddr) AS fd_name, CAST(uid AS VARCHAR) AS user_name,
       coalesce(left(container_id, 12), 'host') AS container_id,
       CAST(NULL AS VARCHAR) AS k8s_pod_name, host
FROM raw_events
"""


def _fallback_build(con) -> None:  # type: ignore[no-untyped-def]
    con.execute(_FALLBACK_EVENTS)


def install_fallbacks() -> None:
    """Use the stand-in ``events`` view while the enrich module is missing (idempotent)."""
    if not HAVE_ENRICH:
        fcap.api._build_events = _fallback_build  # type: ignore[assignment]


def sample_capture(directory: Path) -> Path:
    """The cookbook's sample capture, written into ``directory``."""
    from fcap.analyze.hunt import sample

    return sample.build(directory / "hunt-sample.parquet")
