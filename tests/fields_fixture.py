"""Hand-built raw tables for the field/enrich unit tests (no capture files needed).

``Raw`` collects event rows (dicts; missing EVENTS columns are null) and side
table rows, then ``attach(con)`` creates raw_events / raw_<side> exactly as
Capture.attach would (schema columns + host).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from fcap.schema import EVENTS, SIDE_TABLES

T0 = 1_795_000_000_000_000_000


@dataclass
class Raw:
    events: list[dict[str, Any]] = field(default_factory=list)
    side: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _t: int = T0

    def ev(self, syscall: str, pid: int, tid: int | None = None, *, dt: int = 1000,
           **cols: Any) -> int:
        """Append an event ``dt`` ns after the previous one; returns its ts."""
        self._t += dt
        row = {"ts": self._t, "cpu": 0, "pid": pid, "tid": tid if tid is not None else pid,
               "syscall": syscall, "vpid": pid, "vtid": tid if tid is not None else pid,
               "uid": 0, "gid": 0, "euid": 0, "egid": 0, "loginuid": 4294967295, "tty": 0,
               "sid": pid, "pgid": pid, "comm": "x"}
        row.update(cols)
        self.events.append(row)
        return self._t

    def add(self, table: str, **row: Any) -> None:
        self.side.setdefault(table, []).append(row)

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        ev = pa.Table.from_pylist(self.events, schema=EVENTS)
        ev = ev.append_column("host", pa.array([None] * len(ev), pa.string()))
        con.register("fx_events", ev)
        con.execute("CREATE OR REPLACE TABLE raw_events AS SELECT * FROM fx_events")
        con.unregister("fx_events")
        for name, schema in SIDE_TABLES.items():
            t = pa.Table.from_pylist(self.side.get(name, []), schema=schema)
            t = t.append_column("host", pa.array([None] * len(t), pa.string()))
            con.register("fx_side", t)
            con.execute(f"CREATE OR REPLACE TABLE raw_{name} AS SELECT * FROM fx_side")
            con.unregister("fx_side")


def bash_world() -> Raw:
    """init (pid 1) and a bash (pid 100) with a terminal on fds 0, 1 and 255 (close-on-exec)
    and a connected TCP socket on fd 7, from the start snapshot."""
    cloexec = 0o2000000
    r = Raw()
    r.add("processes", pid=1, ppid=0, comm="systemd", exe="/sbin/init", argv=["/sbin/init"],
          exepath="/usr/lib/systemd/systemd", start_ts=10)
    r.add("processes", pid=100, ppid=1, comm="bash", exe="bash", exepath="/usr/bin/bash",
          argv=["bash"], start_ts=20)
    r.add("fds", pid=100, fd=0, type="file", name="/dev/pts/1", flags=2)
    r.add("fds", pid=100, fd=1, type="file", name="/dev/pts/1", flags=2)
    r.add("fds", pid=100, fd=255, type="file", name="/dev/pts/1", flags=2 | cloexec)
    r.add("fds", pid=100, fd=7, type="ipv4", name="10.0.0.5:40000->1.2.3.4:443",
          sock_family=2, l4proto=6, laddr="10.0.0.5", lport=40000, raddr="1.2.3.4", rport=443)
    return r


def build(raw: Raw) -> duckdb.DuckDBPyConnection:
    """A connection with raw tables from ``raw`` and the enriched ``events`` view."""
    from fcap.analyze import enrich

    con = duckdb.connect()
    raw.attach(con)
    enrich.build(con)
    return con


def fields(con: duckdb.DuckDBPyConnection, names: list[str], where: str = "true",
           args: dict[str, str] | None = None) -> list[tuple]:
    """Evaluate Falco field names via the catalog for the matching events, in evt.num order."""
    from fcap.analyze.fields.catalog import lookup

    sel = []
    for n in names:
        base, _, arg = n.partition("[")
        ref = lookup(base, arg[:-1] if arg else None)
        sel.append(ref.sql)
    q = f"SELECT {', '.join(sel)} FROM events e WHERE {where} ORDER BY e.evt_num"
    return con.execute(q).fetchall()


def open_events(capture: Any) -> duckdb.DuckDBPyConnection:
    """A connection with ``capture`` (a file, folder or list of them) attached and its
    ``events`` view built, for tests over recorded or written captures."""
    from fcap.analyze import enrich
    from fcap.capture.reader import open_capture

    con = duckdb.connect()
    open_capture(capture).attach(con)
    enrich.build(con)
    return con


def write_capture(raw: Raw, path: Any) -> Any:
    """Write ``raw`` as a capture file (CaptureWriter: events, side tables, meta); returns
    its path. For tests that open a capture (``fcap.open``) with hand-built rows."""
    from fcap.capture.writer import CaptureWriter

    ev = pa.Table.from_pylist(raw.events, schema=EVENTS)
    side = {name: pa.Table.from_pylist(raw.side.get(name, []), schema=schema)
            for name, schema in SIDE_TABLES.items()}
    w = CaptureWriter(path, meta={"hostname": "h"}, side_tables=side)
    for b in ev.to_batches():
        w.write(b)
    end = max((e["ts"] for e in raw.events), default=T0) + 1
    w.set_stats(events_written=len(ev), drops_per_cpu=[0], end_ns=end)
    return w.close()[0]


def ipv6_server_world() -> Raw:
    """:func:`bash_world` plus IPv6 sockets of pid 100: a server bound to ::1 port 8080
    (fd 3: a server socket at bind, libsinsp's parse_bind_exit) that listens and accepts
    a client from ::1 (fd 4), a client connected from fd00::5 to fd00::80 port 443 (fd 5),
    and sshd-like dual stack, bound to '::' port 22 (fd 6: an IPv4 server socket)."""
    r = bash_world()
    v6 = dict(ppid=1, sock_family=10, sock_type=1, l4proto=6)
    r.ev("socket", 100, res=3, ppid=1, a0=10, a1=1, a2=6, fd=3)
    r.ev("bind", 100, res=0, fd=3, a0=3, laddr="::1", lport=8080, **v6)
    r.ev("listen", 100, res=0, fd=3, a0=3, a1=5, laddr="::1", lport=8080, **v6)
    r.ev("accept4", 100, res=4, a0=3, a3=0, fd=4, laddr="::1", lport=8080, raddr="::1",
         rport=50000, **v6)
    r.ev("read", 100, res=5, ppid=1, fd=4, a0=4)
    r.ev("socket", 100, res=5, ppid=1, a0=10, a1=1, a2=6, fd=5)
    r.ev("connect", 100, res=0, fd=5, a0=5, laddr="fd00::5", lport=40000, raddr="fd00::80",
         rport=443, **v6)
    r.ev("write", 100, res=5, ppid=1, fd=5, a0=5)
    r.ev("socket", 100, res=6, ppid=1, a0=10, a1=1, a2=6, fd=6)
    r.ev("bind", 100, res=0, fd=6, a0=6, laddr="::", lport=22, **v6)
    r.ev("listen", 100, res=0, fd=6, a0=6, a1=5, laddr="::", lport=22, **v6)
    r.ev("read", 100, res=5, ppid=1, fd=7, a0=7)
    return r
