"""Synthetic captures: defaults, validation, and a realistic generated capture."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from fcap.capture.reader import open_capture
from fcap.capture.synth import events_table, generate, make_capture

from fcap.schema import EVENTS


def q(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_events_table_defaults() -> None:
    t = events_table([{"syscall": "openat", "pid": 42}, {"syscall": "close", "ts": 5}])
    assert t.schema.equals(EVENTS)
    rows = t.to_pylist()
    assert rows[0]["tid"] == 42 and rows[0]["vpid"] == 42 and rows[0]["cpu"] == 0
    assert rows[1]["ts"] == 5 and rows[1]["pid"] == 100
    assert rows[0]["loginuid"] == 4294967295 and rows[0]["path"] is None


def test_events_table_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="no 'syscall'"):
        events_table([{"pid": 1}])
    with pytest.raises(ValueError, match="unknown EVENTS columns"):
        events_table([{"syscall": "x", "bogus": 1}])


def test_make_capture_side_tables(tmp_path: Path) -> None:
    p = make_capture(tmp_path / "m.parquet", [{"syscall": "execve", "argv": ["ls", "-l"]}],
                     processes=[{"pid": 1, "comm": "init"}], meta={"hostname": "box"})
    c = open_capture(p)
    assert c.meta[0]["hostname"] == "box" and c.meta[0]["complete"] is True
    assert c.side_table("processes").column("comm").to_pylist() == ["init"]
    assert "root" in c.side_table("users").column("name").to_pylist()
    assert c.events_table().column("argv").to_pylist() == [["ls", "-l"]]


def test_generate_realistic_and_deterministic(tmp_path: Path) -> None:
    a = generate(tmp_path / "a.parquet", 120_000, seed=3)
    b = generate(tmp_path / "b.parquet", 120_000, seed=3)
    c = open_capture(a)
    assert c.num_events == 120_000
    con = duckdb.connect()
    c.attach(con)
    types = dict(q(con, "SELECT syscall, count(*) FROM raw_events GROUP BY 1"))
    assert types["openat"] > types["connect"] > types.get("ptrace", 0)
    assert {"openat", "close", "read", "connect", "clone", "execve", "procexit"} <= set(types)
    # lineage: every short-lived process has a clone row before its execve, with the parent
    bad = q(con, """
        SELECT count(*) FROM raw_events x
        WHERE x.syscall = 'execve' AND NOT EXISTS (
          SELECT 1 FROM raw_events k WHERE k.syscall = 'clone' AND k.pid = x.pid
            AND k.ts < x.ts AND k.ppid = x.ppid)""")[0][0]
    assert bad == 0
    assert q(con, "SELECT count(*) FROM raw_events WHERE syscall='execve' AND argv IS NULL")[0][0] == 0
    assert q(con, "SELECT count(DISTINCT container_id) FROM raw_events")[0][0] >= 2
    assert q(con, "SELECT count(*) FROM raw_events WHERE syscall='openat' AND path IS NULL")[0][0] == 0
    assert q(con, "SELECT count(*) FROM raw_processes")[0][0] >= 200
    # the same seed gives the same rows
    con2 = duckdb.connect()
    open_capture(b).attach(con2)
    h1 = q(con, "SELECT sum(hash(ts, pid, syscall, path)) FROM raw_events")
    h2 = q(con2, "SELECT sum(hash(ts, pid, syscall, path)) FROM raw_events")
    assert h1 == h2


def test_generate_argument_layout_matches_kernel_order(tmp_path: Path) -> None:
    """a0..a5 follow the kernel signature (as in real recordings), per syscall."""
    from fcap.analyze.fields.evtargs import KARGS

    p = generate(tmp_path / "g.parquet", 60_000, seed=5)
    con = duckdb.connect()
    open_capture(p).attach(con)
    # a syscall row carries all six registers (real recordings: all non-null);
    # lifecycle rows (clone child side, procexit) carry none
    per = q(con, """SELECT syscall, count(*), count(a0), count(a5) FROM raw_events
                    WHERE syscall NOT IN ('clone', 'procexit') GROUP BY 1""")
    assert per and all(n == c0 == c5 for _, n, c0, c5 in per), per
    assert {s for s, *_ in per} - {"execve"} <= set(KARGS)
    nulls = q(con, "SELECT count(a0) FROM raw_events WHERE syscall IN ('clone', 'procexit')")
    assert nulls[0][0] == 0
    # openat(dirfd, path, flags, mode): AT_FDCWD, a user pointer, O_* flags, mode with O_CREAT
    rows = q(con, """SELECT a0, a1, a2, a3 FROM raw_events WHERE syscall = 'openat'""")
    assert {a0 for a0, *_ in rows} <= {4294967196, -100}
    assert all(a1 > 1 << 40 for _, a1, _, _ in rows)
    flags = {a2 for _, _, a2, _ in rows}
    assert 0 in flags and any(f & 0o100 for f in flags)  # O_RDONLY and O_CREAT opens
    assert all((a3 != 0) == bool(a2 & 0o100) for _, _, a2, a3 in rows)
    # the fd argument is a0 where the kernel signature says so
    bad = q(con, """SELECT syscall, count(*) FROM raw_events
                    WHERE syscall IN ('close', 'read', 'write', 'connect', 'sendto', 'recvfrom',
                                      'bind', 'listen') AND a0 <> fd GROUP BY 1""")
    assert bad == []
    assert q(con, "SELECT count(*) FROM raw_events WHERE syscall = 'dup2' AND "
                  "NOT (a1 = res AND fd = res)")[0][0] == 0
    assert q(con, "SELECT count(*) FROM raw_events WHERE syscall = 'socket' AND "
                  "a0 <> 2")[0][0] == 0
    assert q(con, "SELECT count(*) FROM raw_events WHERE syscall = 'unlinkat' AND "
                  "a2 NOT IN (0, 512)")[0][0] == 0
    assert q(con, "SELECT count(*) FROM raw_events WHERE syscall = 'kill' AND "
                  "a1 NOT BETWEEN 0 AND 64")[0][0] == 0


def test_generate_paths_dictionary_encoded(tmp_path: Path) -> None:
    """path/path2 use dictionary encoding, as real recordings do (fast path filters)."""
    import pyarrow.parquet as pq

    p = generate(tmp_path / "d.parquet", 50_000, seed=1)
    md = pq.ParquetFile(p).metadata
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        enc = {rg.column(i).path_in_schema: rg.column(i).encodings for i in range(rg.num_columns)}
        for col in ("path", "path2", "comm", "syscall", "raddr"):
            assert "RLE_DICTIONARY" in enc[col], (col, enc[col])


def test_generate_access_patterns_like_a_host(tmp_path: Path) -> None:
    """Most opens read; writes go to logs/tmp/data; secrets are read rarely (as recorded)."""
    p = generate(tmp_path / "r.parquet", 200_000, seed=2)
    con = duckdb.connect()
    open_capture(p).attach(con)
    opens, writes, etc_writes, shadow = q(con, """
        SELECT count(*), count(*) FILTER (WHERE (a2 & 3) <> 0),
               count(*) FILTER (WHERE (a2 & 3) <> 0 AND path LIKE '/etc/%'),
               count(*) FILTER (WHERE path = '/etc/shadow')
        FROM raw_events WHERE syscall = 'openat'""")[0]
    assert 0.005 < writes / opens < 0.1
    assert etc_writes < writes * 0.05
    assert 0 < shadow < opens * 0.01
    top = q(con, """SELECT path FROM raw_events WHERE syscall = 'openat'
                    GROUP BY 1 ORDER BY count(*) DESC LIMIT 3""")
    assert "/etc/shadow" not in {r[0] for r in top}
