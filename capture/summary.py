"""What ``fcap info`` shows: a summary of a capture (library side, JSON-ready)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any

from fcap.capture import journal as jr
from fcap.capture.reader import Capture

from fcap.errors import CaptureError


def _q(con: Any, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def summarize(cap: Capture, *, top: int | None = None) -> dict[str, Any]:
    """A JSON-ready summary: files, hosts, span, events by type, processes, containers, drops.

    Corrupt row data (the footer was fine) raises CaptureError naming the file.
    """
    import duckdb

    try:
        return _summarize(cap, top)
    except duckdb.Error as err:
        raise CaptureError(corrupt_message(cap, err)) from None


def corrupt_message(cap: Capture, err: Exception) -> str:
    """One line for a DuckDB error met while reading a capture's rows."""
    text = str(err).splitlines()[0]
    text = re.sub(r"^[A-Za-z ]+ Error: ", "", text)
    named = [str(p) for p in cap.paths if str(p) in text]
    where = named[0] if named else ", ".join(str(p) for p in cap.paths[:3])
    text = text.replace(f'Failed to read file "{where}": ', "")
    return f"{where}: corrupt capture data ({text})"


def _summarize(cap: Capture, top: int | None) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    cap.attach(con)
    by_type = _q(con, "SELECT syscall, count(*) AS n FROM raw_events GROUP BY 1 ORDER BY 2 DESC, 1")
    total, first, last, pids, execs = _q(
        con,
        "SELECT count(*), min(ts), max(ts), count(DISTINCT pid), "
        "count(*) FILTER (WHERE syscall IN ('execve', 'execveat') AND res = 0) FROM raw_events",
    )[0]
    files = []
    for f in cap.files:
        m = f.meta
        size = None
        with contextlib.suppress(OSError):
            size = f.path.stat().st_size if f.kind == "parquet" else sum(
                p.stat().st_size for p in f.path.rglob("*") if p.is_file())
        status = "complete" if m.get("complete") else (
            "repaired" if m.get("repaired") else ("unfinished journal" if f.kind == "journal"
                                                  else "incomplete"))
        rows = f.num_rows
        if f.kind == "journal":  # the stats file may lag the stream by a flush
            rows = sum(b.num_rows for b in jr.read_events(f.path))
        files.append({
            "path": str(f.path), "kind": f.kind, "host": f.host, "events": rows,
            "bytes": size, "segment": m.get("segment"), "status": status,
            "schema_version": m.get("schema_version"), "fcap_version": m.get("fcap_version"),
        })
    drops_per_host: dict[str, list[int]] = {}
    for f in cap.files:
        d = [int(x) for x in (f.meta.get("drops_per_cpu") or [])]
        acc = drops_per_host.setdefault(f.host or "", [])
        acc.extend([0] * (len(d) - len(acc)))
        for i, x in enumerate(d):
            acc[i] += x
    drops_total = sum(sum(v) for v in drops_per_host.values())
    procs = cap.side_table("processes")
    conts = cap.side_table("containers")
    seen_containers = {r[0] for r in _q(
        con, "SELECT DISTINCT container_id FROM raw_events WHERE container_id IS NOT NULL")}
    containers = []
    for r in conts.to_pylist():
        containers.append({
            "id": r["id"], "name": r["name"], "image": r["image"], "type": r["type"],
            "pod": f"{r['pod_namespace']}/{r['pod_name']}" if r["pod_name"] else None,
            "privileged": r["privileged"], "host": r["host"],
            "events": r["id"] in seen_containers,
        })
    known = {c["id"] for c in containers}
    for cid in sorted(seen_containers - known):
        containers.append({"id": cid, "name": None, "image": None, "type": None, "pod": None,
                           "privileged": None, "host": None, "events": True})
    metas = cap.meta
    start = min((m["start_ns"] for m in metas if m.get("start_ns")), default=first)
    end = max((m["end_ns"] for m in metas if m.get("end_ns")), default=last)
    hosts = []
    for h in cap.hosts:
        m = next(f.meta for f in cap.files if (f.host or "") == h)
        hosts.append({"host": h, "kernel": m.get("kernel"), "machine": m.get("machine"),
                      "boot_time_ns": m.get("boot_time_ns")})
    versions = sorted({m.get("schema_version") for m in metas if m.get("schema_version")})
    syscalls = sorted({s for m in metas for s in (m.get("syscalls") or [])})
    return {
        "files": files,
        "segments": len(files),
        "hosts": hosts,
        "schema_versions": versions,
        "fcap_versions": sorted({m.get("fcap_version") for m in metas if m.get("fcap_version")}),
        "status": _status(files),
        "start_ns": start,
        "end_ns": end,
        "first_event_ns": first,
        "last_event_ns": last,
        "events": total,
        "events_by_type": dict(by_type[:top] if top else by_type),
        "processes": {"snapshot": procs.num_rows, "pids_in_events": pids, "execs": execs},
        "containers": containers,
        "drops_total": drops_total,
        "drops_per_cpu": drops_per_host,
        "syscalls_recorded": syscalls,
        "filters": [m.get("filters") for m in metas if m.get("filters")][:1] or None,
        "snaplen": max((m.get("snaplen") or 0 for m in metas), default=0),
    }


def _status(files: list[dict[str, Any]]) -> str:
    """'complete', or e.g. 'incomplete: 1 unfinished journal, 11 complete'."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f["status"]] = counts.get(f["status"], 0) + 1
    if set(counts) <= {"complete"}:
        return "complete"
    order = ["unfinished journal", "repaired", "incomplete", "complete"]
    parts = [f"{counts[k]} {k}" for k in order if k in counts]
    return "incomplete: " + ", ".join(parts)


def _ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns % 10**9 // 10**6:03d} UTC"


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n}"


def drops_warning(s: dict[str, Any]) -> str | None:
    """The loud warning line when the kernel dropped events, or None."""
    if not s["drops_total"]:
        return None
    parts = []
    for host, per in s["drops_per_cpu"].items():
        cpus = ", ".join(f"cpu{i}: {n:,}" for i, n in enumerate(per) if n)
        parts.append(f"{host + ' ' if host and len(s['drops_per_cpu']) > 1 else ''}{cpus}")
    return (f"WARNING: {s['drops_total']:,} events were DROPPED in the kernel ({'; '.join(parts)}): "
            "this capture is missing activity")


def _relative(path: str, base: Path) -> str:
    """``path`` below ``base`` (its name when it is directly there)."""
    try:
        return str(Path(path).relative_to(base))
    except ValueError:  # pragma: no cover - commonpath makes base a parent
        return Path(path).name


def render(s: dict[str, Any]) -> str:
    """The human-readable ``fcap info`` text."""
    lines = []
    nfiles = len(s["files"])
    total_bytes = sum(f["bytes"] or 0 for f in s["files"])
    first = s["files"][0]["path"] if s["files"] else "-"
    # several files: their common folder (a rotated directory, a hive tree's root)
    base = Path(os.path.commonpath([str(Path(f["path"]).parent) for f in s["files"]])) \
        if nfiles > 1 else Path(first).parent
    nhosts = len(s["hosts"])
    where = first if nfiles == 1 else (
        f"{base} ({nfiles} files" + (f", {nhosts} hosts)" if nhosts > 1 else ")"))
    lines.append(f"capture     {where}, {_size(total_bytes)}")
    for h in s["hosts"]:
        lines.append(f"host        {h['host'] or '?'} (kernel {h['kernel'] or '?'}, {h['machine'] or '?'})")
    lines.append(f"schema      {', '.join(map(str, s['schema_versions'])) or '?'} "
                 f"(written by fcap {', '.join(s['fcap_versions']) or '?'})")
    span = ""
    if s["start_ns"] is not None and s["end_ns"] is not None:
        span = f" ({(s['end_ns'] - s['start_ns']) / 1e9:.1f} s)"
    lines.append(f"recorded    {_ts(s['start_ns'])} -> {_ts(s['end_ns'])}{span}")
    status = s["status"]
    if status != "complete":
        hint = ("fcap repair finalizes the journal" if "unfinished" in status
                else "the recording did not finish cleanly")
        status = f"{status.upper()} ({hint})"
    lines.append(f"status      {status}")
    if nfiles > 1:
        lines.append(f"segments    {nfiles}")
        for f in s["files"]:
            seg = "" if f["segment"] is None else f" #{f['segment']}"
            lines.append(f"  {_relative(f['path'], base)}{seg}  {f['events']:,} events  "
                         f"{_size(f['bytes'])}  {f['status']}")
    lines.append(f"events      {s['events']:,}")
    total = max(s["events"], 1)
    for name, n in s["events_by_type"].items():
        lines.append(f"  {name:<20} {n:>12,}  {100 * n / total:5.1f}%")
    p = s["processes"]
    lines.append(f"processes   {p['snapshot']:,} in the start snapshot, {p['pids_in_events']:,} "
                 f"pids in events, {p['execs']:,} successful execs")
    lines.append(f"containers  {len(s['containers'])}")
    for c in s["containers"]:
        pod = f"  pod {c['pod']}" if c["pod"] else ""
        priv = "  PRIVILEGED" if c["privileged"] else ""
        lines.append(f"  {c['id'][:12]}  {c['name'] or '-'}  {c['image'] or '-'}{pod}{priv}")
    if s["syscalls_recorded"]:
        names = s["syscalls_recorded"]
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        lines.append(f"syscalls    {len(names)} recorded ({shown})")
    if s["filters"]:
        flt = {k: v for k, v in s["filters"][0].items() if v}
        if flt:
            lines.append("filters     " + ", ".join(f"{k}={v}" for k, v in sorted(flt.items())))
    if s["snaplen"]:
        lines.append(f"snaplen     {s['snaplen']} bytes of read/write payloads kept")
    warning = drops_warning(s)
    lines.append(f"drops       {s['drops_total']:,}")
    if warning:
        lines.append(warning)
    return "\n".join(lines)
