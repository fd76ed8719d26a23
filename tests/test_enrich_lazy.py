"""The lazy events views: evt_num without a per-row table, narrow views equal to the full one."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from fcap.analyze import enrich
from fcap.analyze.fields.columns import columns
from fcap.analyze.state import positions
from fcap.capture.reader import open_capture

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _global_order(ts: np.ndarray, cpu: np.ndarray, tid: np.ndarray) -> np.ndarray:
    """evt_num - 1 per row, the slow obvious way: rank in (ts, cpu, tid, position) order."""
    order = np.lexsort((np.arange(len(ts)), tid, cpu, ts))
    g = np.empty(len(ts), np.int64)
    g[order] = np.arange(len(ts))
    return g


@pytest.mark.parametrize("seed", range(40))
def test_evt_num_breaks_give_the_global_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    ts = np.sort(rng.integers(0, n * 3, n))  # sorted times with ties
    cpu = rng.integers(0, 3, n)
    tid = rng.integers(100, 104, n)
    late = rng.random(n) < rng.choice([0.0, 0.02, 0.2])  # rows flushed late: moved back
    idx = np.flatnonzero(late)
    ts[idx] = np.maximum(ts[idx] - rng.integers(0, 50, len(idx)), 0)
    breaks = positions.breaks_of(ts, cpu, tid)
    assert breaks is not None and breaks[0, 0] == 0
    assert (np.diff(breaks[:, 0]) > 0).all()
    pos = np.arange(n)
    delta = breaks[np.searchsorted(breaks[:, 0], pos, "right") - 1, 1]
    assert np.array_equal(pos + delta, _global_order(ts, cpu, tid))


@pytest.mark.parametrize("seed", range(12))
def test_evt_num_breaks_of_a_capture_read_only_the_rows_they_compare(seed: int) -> None:
    """evt_num_breaks (times of every row, cpu/tid of a few) equals breaks_of on every
    column, for nearly sorted captures with ties, late rows and late rows at the end."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 600))
    ts = np.sort(rng.integers(0, n * 2, n))
    late = rng.random(n) < rng.choice([0.0, 0.01, 0.1])
    late[-1] |= seed % 3 == 0  # a late last row (no in-order row after it)
    idx = np.flatnonzero(late)
    ts[idx] = np.maximum(ts[idx] - rng.integers(0, 80, len(idx)), 0)
    cpu, tid = rng.integers(0, 4, n), rng.integers(1, 5, n)
    con = duckdb.connect()
    con.register("t", {"ts": ts, "cpu": cpu, "tid": tid, "_rn": np.arange(n)})
    con.execute("CREATE TABLE tt AS SELECT * FROM t ORDER BY _rn")
    con.execute("CREATE VIEW raw_events AS SELECT ts, cpu, tid FROM tt")
    con.execute("CREATE VIEW raw_events_rn AS SELECT * FROM tt")
    got, want = positions.evt_num_breaks(con), positions.breaks_of(ts, cpu, tid)
    assert (got is None) == (want is None)
    if want is not None:
        assert np.array_equal(got, want)


def test_evt_num_breaks_in_sql_and_too_many() -> None:
    ts = np.array([10, 30, 20, 40, 40, 35, 50])
    cpu = np.array([0, 0, 1, 1, 0, 0, 0])
    tid = np.zeros(7, np.int64)
    breaks = positions.breaks_of(ts, cpu, tid)
    assert breaks is not None
    sql = positions.evt_num_sql(breaks, "x")
    got = [duckdb.sql(f"SELECT {sql} FROM (SELECT {i} AS x)").fetchall()[0][0] for i in range(7)]
    assert got == list(_global_order(ts, cpu, tid) + 1) == [1, 3, 2, 6, 5, 4, 7]
    n = positions.MAX_BREAKS
    assert positions.breaks_of(np.tile([2, 1], n), np.zeros(2 * n), np.zeros(2 * n)) is None
    assert positions.breaks_of(np.arange(5), np.zeros(5), np.zeros(5)).tolist() == [[0, 0]]


def _open(name: str, *, rn: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    open_capture(SAMPLES / name).attach(con)
    if not rn:
        con.execute("DROP VIEW raw_events_rn")
    return con


@pytest.mark.parametrize("name", ["reverse-shell", "container-shell"])
def test_every_narrow_view_column_equals_the_full_view(name: str) -> None:
    con = _open(name)
    enrich.build(con)
    con.execute("CREATE TABLE full_ev AS SELECT * FROM events")
    assert con.execute("SELECT evt_num_sql IS NOT NULL FROM fc_viewmeta").fetchone()[0]
    bad = []
    for col in columns(0, None):
        enrich.build_view(con, "one", [col])
        n = con.execute(
            f'SELECT count(*) FROM full_ev f FULL JOIN one o USING (evt_num) '
            f'WHERE f."{col}" IS DISTINCT FROM o."{col}"').fetchone()[0]
        if n:
            bad.append((col, n))
    assert bad == []


def test_narrow_view_has_only_the_stages_it_needs() -> None:
    con = _open("reverse-shell")
    enrich.build_view(con, "raw_only", ["evt_rawres", "fs_path_name"])
    assert not any(enrich._exists(con, t) for t in ("fc_pos", "fc_rid", "fc_fdrec"))
    assert "POSITIONAL" not in con.execute("EXPLAIN SELECT * FROM raw_only").fetchall()[0][1].upper()
    enrich.build_view(con, "v", ["proc_name", "container_id", "user_name"])
    assert not any(enrich._exists(con, t) for t in ("fc_pos", "fc_rid", "fc_fdrec"))
    plan = con.execute("EXPLAIN SELECT * FROM v").fetchall()[0][1]
    # the chain row by a hash join on pid and the interval (no pid has many intervals)
    assert "fc_chain_few" in plan and "ASOF" not in plan.upper() and "fc_fdrec" not in plan
    # a raw-column filter reaches the scan, below the joins
    plan = con.execute("EXPLAIN SELECT proc_name FROM v WHERE evt_type = 'execve'").fetchall()[0][1]
    assert "Filters: syscall" in plan
    enrich.build_view(con, "w", ["fd_name"])  # the descriptor state, no per-row key table
    assert enrich._exists(con, "fc_rid") and not enrich._exists(con, "fc_pos")
    own = con.execute("SELECT count(*) FILTER (WHERE own), count(*) FILTER (WHERE own AND rid <> rn) "
                      "FROM fc_rid").fetchall()[0]
    assert own[0] > 0 and own[1] == 0
    enrich.build_view(con, "d", ["evt_deltatime"])
    assert {"evt_deltatime", "rid"} <= positions.table_columns(con, "fc_pos")


def _no_deltatime_columns() -> list[str]:
    return [c for c, sql in columns(0, None).items() if "evt_deltatime" not in sql]


@pytest.mark.parametrize("name", ["shell-session", "container-shell"])
def test_keys_in_the_view_equal_the_numpy_positions(name: str) -> None:
    """Process, container and fd columns with the keys computed in the view (evt_num from
    the scan position, chain rows by hash join, the descriptor stage fed by one scan in
    any order) equal those over the numpy positions table (captures without
    ``raw_events_rn``)."""
    a, b = _open(name), _open(name, rn=False)
    fields = _no_deltatime_columns()
    for con in (a, b):
        enrich.build_view(con, "v", fields)
    assert not positions.table_columns(a, "fc_pos")  # no per-row key table
    assert "evt_deltatime" in positions.table_columns(b, "fc_pos")  # numpy positions
    q = "SELECT * FROM v ORDER BY evt_num"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


@pytest.mark.parametrize("limit", [0, 1])
def test_pids_with_many_chain_intervals_use_the_asof_join(
        limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain row (and cwd interval) of pids with more than CHAIN_HASH_MAX intervals
    comes from the bucketed hash join; every process column equals the plain one's."""
    fields = [c for c, sql in columns(0, None).items()
              if ("c." in sql or "w." in sql) and "evt_deltatime" not in sql]
    ref = _open("shell-session")
    enrich.build_view(ref, "v", fields)
    want = ref.execute("SELECT * FROM v ORDER BY evt_num").fetchall()
    monkeypatch.setattr(positions, "CHAIN_HASH_MAX", limit)
    con = _open("shell-session")
    enrich.build_view(con, "v", fields)
    many = con.execute("SELECT count(*) FROM fc_chain_sh").fetchone()[0]
    assert con.execute("SELECT count(*) FROM fc_pcwd_sh").fetchone()[0] > 0
    few = con.execute("SELECT count(DISTINCT pid) FROM fc_chain_few").fetchone()[0]
    assert many > 0 and (few > 0) == (limit > 0)
    # about one interval per (pid, bucket), a few rows per interval
    per_bucket, rows, n = con.execute(
        "SELECT (SELECT max(n) FROM (SELECT count(*) AS n FROM fc_pcwd_mb GROUP BY pid, b)), "
        "(SELECT count(*) FROM fc_pcwd_mb), (SELECT count(*) FROM fc_pcwd)").fetchone()
    assert per_bucket <= 8 and rows <= 4 * n
    plan = con.execute("EXPLAIN SELECT * FROM v").fetchall()[0][1]
    assert "fc_chain_mb" in plan and "ASOF" not in plan.upper()
    assert con.execute("SELECT * FROM v ORDER BY evt_num").fetchall() == want


def test_chain_intervals_partition_each_pids_time() -> None:
    """fc_chain's [s, e) intervals of a pid follow each other without gap or overlap, so
    the hash join on them finds the row an ASOF join on (pid, ts) would."""
    con = _open("shell-session")
    enrich.prepare(con)
    bad = con.execute(
        "SELECT count(*) FROM (SELECT s, e, lead(s) OVER (PARTITION BY pid ORDER BY s) AS nxt "
        "FROM fc_chain) WHERE s >= e OR e IS DISTINCT FROM coalesce(nxt, 9223372036854775807)"
    ).fetchone()[0]
    assert bad == 0
    same = con.execute(
        "SELECT count(*) FILTER (WHERE h.cid IS DISTINCT FROM a.cid), count(*) "
        "FROM raw_events x LEFT JOIN fc_chain h ON h.pid = x.pid AND x.ts >= h.s AND x.ts < h.e "
        "ASOF LEFT JOIN fc_chain a ON a.pid = x.pid AND x.ts >= a.s").fetchone()
    assert same[0] == 0 and same[1] > 1000
