"""Synthetic captures, built without the kernel (unit tests and benchmarks).

:func:`make_capture` writes a capture from explicit rows (defaults filled for
every EVENTS column); :func:`generate` writes a large, realistic one fast
(vectorized with numpy: ~10M rows in seconds), with a few hundred long-lived
processes in the snapshot, short-lived children appearing through
clone/execve/procexit rows, openat/close/read mixes over realistic paths,
connects and accepts, and a few containers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from fcap.capture import journal as jr

from fcap import __version__
from fcap.schema import EVENTS, SCHEMA_VERSION, SIDE_TABLES

TableLike = pa.Table | Sequence[dict[str, Any]] | None

#: CAP_FULL_SET of a 6.x kernel: capabilities 0 (CAP_CHOWN) .. 40 (CAP_CHECKPOINT_RESTORE)
CAP_FULL = (1 << 41) - 1

BASE_TS = 1_795_000_000_000_000_000  # 2026-11-18, a fixed epoch for reproducible captures


def _as_table(name: str, rows: TableLike) -> pa.Table:
    if rows is None:
        return SIDE_TABLES[name].empty_table()
    if isinstance(rows, pa.Table):
        return jr.conform(rows, name)
    return pa.Table.from_pylist(list(rows), schema=SIDE_TABLES[name])


def default_meta(**overrides: Any) -> dict[str, Any]:
    """Host metadata for a synthetic capture."""
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "fcap_version": __version__,
        "hostname": "synth-host",
        "kernel": "6.18.0-synth",
        "machine": "x86_64",
        "boot_time_ns": BASE_TS - 3600 * 10**9,
        "syscalls": None,
        "filters": {},
        "snaplen": 0,
        "drops_per_cpu": [0, 0],
        "drops_total": 0,
        "complete": True,
        "repaired": False,
        "segment": None,
        "command": ["synth"],
    }
    meta.update(overrides)
    return meta


def events_table(events: pa.Table | Sequence[dict[str, Any]]) -> pa.Table:
    """EVENTS rows from dicts or a table; missing values get defaults.

    Defaults: ``ts`` = BASE_TS + i µs, ``cpu`` 0, ``pid`` 100, ``tid`` = pid,
    ``vpid``/``vtid`` = pid/tid, ``res`` 0, ``comm`` "synth", uid/gid 0,
    loginuid 4294967295 (unset), ``cap_permitted``/``cap_effective`` the full
    set when ``euid`` is 0 else 0, ``cap_inheritable`` 0 (give None for "not
    recorded"); every other column null.
    """
    rows = events.to_pylist() if isinstance(events, pa.Table) else [dict(e) for e in events]
    for i, r in enumerate(rows):
        if r.get("ts") is None:
            r["ts"] = BASE_TS + i * 1000
        r.setdefault("cpu", 0)
        r.setdefault("pid", 100)
        r.setdefault("tid", r["pid"])
        r.setdefault("vpid", r["pid"])
        r.setdefault("vtid", r["tid"])
        r.setdefault("res", 0)
        r.setdefault("comm", "synth")
        for k in ("uid", "gid", "euid", "egid"):
            r.setdefault(k, 0)
        r.setdefault("loginuid", 4294967295)
        full = CAP_FULL if r["euid"] == 0 else 0
        r.setdefault("cap_permitted", full)
        r.setdefault("cap_inheritable", 0)
        r.setdefault("cap_effective", full)
        if "syscall" not in r:
            raise ValueError(f"event {i} has no 'syscall'")
    unknown = {k for r in rows for k in r} - set(EVENTS.names)
    if unknown:
        raise ValueError(f"unknown EVENTS columns: {sorted(unknown)}")
    return pa.Table.from_pylist(rows, schema=EVENTS)


def make_capture(
    path: Path | str,
    events: pa.Table | Sequence[dict[str, Any]],
    *,
    processes: TableLike = None,
    fds: TableLike = None,
    containers: TableLike = None,
    users: TableLike = None,
    groups: TableLike = None,
    cgroups: TableLike = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a complete capture with the given rows; return its path."""
    path = Path(path)
    table = events_table(events)
    tables = {
        "processes": _as_table("processes", processes),
        "fds": _as_table("fds", fds),
        "containers": _as_table("containers", containers),
        "users": _as_table("users", users if users is not None else _default_users()),
        "groups": _as_table("groups", groups if groups is not None else _default_groups()),
        "cgroups": _as_table("cgroups", cgroups),
    }
    m = default_meta(**(meta or {}))
    if table.num_rows:
        ts = table.column("ts").to_numpy()
        m.setdefault("start_ns", int(ts.min()))
        m.setdefault("end_ns", int(ts.max()))
    jr.write_parquet(path, iter(table.to_batches()), m, tables)
    return path


def _default_users() -> list[dict[str, Any]]:
    return [
        {"uid": 0, "name": "root", "gid": 0, "home": "/root", "shell": "/bin/bash"},
        {"uid": 33, "name": "www-data", "gid": 33, "home": "/var/www", "shell": "/usr/sbin/nologin"},
        {"uid": 1000, "name": "alice", "gid": 1000, "home": "/home/alice", "shell": "/bin/bash"},
        {"uid": 999, "name": "postgres", "gid": 999, "home": "/var/lib/postgresql",
         "shell": "/bin/bash"},
    ]


def _default_groups() -> list[dict[str, Any]]:
    return [{"gid": 0, "name": "root"}, {"gid": 33, "name": "www-data"},
            {"gid": 1000, "name": "alice"}, {"gid": 999, "name": "postgres"}]


def generate(path: Path | str, n_events: int, seed: int = 0, *, chunk: int = 1_000_000,
             hostname: str = "synth-host") -> Path:
    """Write a realistic capture of ``n_events`` rows (vectorized; ~1 s per million).

    See :mod:`fcap.capture._synthgen` for what it simulates.
    """
    from fcap.capture._synthgen import generate as _generate

    return _generate(path, n_events, seed, chunk=chunk, hostname=hostname)
