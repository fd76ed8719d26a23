"""Captures of several hosts opened together: the events view keeps each host's state apart.

Two bundled samples are put under hive ``host=`` folders, the second one with
its pids rewritten so that they collide with the first one's on other
processes (and its host users, groups and cgroup paths renamed). For each host,
every column of the events view over both equals the events view of that
host's capture opened alone, except ``evt_num`` (numbered in the session).
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fcap.analyze import enrich
from fcap.analyze.regress.runner import bundled_samples_dir
from fcap.capture import journal as jr
from fcap.capture.reader import open_capture

from fcap.schema import TABLE_KEY_PREFIX

SAMPLES = bundled_samples_dir()
#: node-a's capture ends before node-b's starts (so node-a's state would leak into node-b's).
NODE_A, NODE_B = "reverse-shell", "shell-session"
_FORKS = ("clone", "clone3", "fork", "vfork")
#: Columns that differ by design between a host alone and the session.
_SESSION = ("evt_num",)


def _side(path: Path) -> tuple[dict[bytes, bytes], dict[str, pa.Table]]:
    kv = dict(pq.read_metadata(path).metadata or {})
    tables = {}
    for k, v in kv.items():
        if k.startswith(TABLE_KEY_PREFIX.encode()):
            tables[k.decode()[len(TABLE_KEY_PREFIX):]] = jr.ipc_to_table(base64.b64decode(v))
    return kv, tables


def _map(col: pa.ChunkedArray | pa.Array, keys: np.ndarray, vals: np.ndarray,
         where: pa.Array | None = None) -> pa.Array:
    """``col`` (integers) with the values in ``keys`` replaced by ``vals`` (rows ``where``)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    x = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    i = np.minimum(np.searchsorted(keys, x), len(keys) - 1)
    hit = keys[i] == x
    if where is not None:
        hit &= where.fill_null(False).to_numpy(zero_copy_only=False)
    out = np.where(hit, vals[i], x)
    return pa.array(out, type=arr.type, mask=arr.is_null().to_numpy(zero_copy_only=False))


def _pids(path: Path) -> set[int]:
    """Every pid value of a capture's events and side tables."""
    t = pq.read_table(path, columns=["pid", "tid", "ppid", "sid", "pgid"])
    out: set[int] = set()
    for c in t.columns:
        out |= set(c.drop_null().to_pylist())
    _, side = _side(path)
    for name, cols in (("processes", ("pid", "ppid", "sid", "pgid")), ("fds", ("pid",)),
                       ("containers", ("pid",))):
        for c in cols:
            if name in side and c in side[name].column_names:
                out |= set(side[name].column(c).drop_null().to_pylist())
    return out


def _rewrite(src: Path, dst: Path, mapping: dict[int, int]) -> None:
    """Copy capture ``src`` to ``dst`` with its host pids renamed by ``mapping`` (a
    bijection of its pids), its host users/groups and cgroup paths renamed."""
    keys = np.array(sorted(mapping), np.int64)
    vals = np.array([mapping[k] for k in keys], np.int64)
    kv, side = _side(src)
    ev = pq.read_table(src)
    cols = {c: ev.column(c) for c in ev.column_names}
    syscall = pc.cast(ev.column("syscall"), pa.string())
    host_ns = pc.equal(ev.column("vpid"), ev.column("pid"))
    thread_ns = pc.equal(ev.column("vtid"), ev.column("tid"))
    fork = pc.and_(pc.and_(pc.is_in(syscall, pa.array(_FORKS)),
                           pc.greater(ev.column("res"), 0)), host_ns)
    for c in ("pid", "tid", "ppid", "sid", "pgid"):
        cols[c] = _map(ev.column(c), keys, vals)
    cols["vpid"] = _map(ev.column("vpid"), keys, vals, host_ns.combine_chunks())
    cols["vtid"] = _map(ev.column("vtid"), keys, vals, thread_ns.combine_chunks())
    cols["res"] = _map(ev.column("res"), keys, vals, fork.combine_chunks())
    out = pa.table(cols, schema=ev.schema)
    for name, pcols in (("processes", ("pid", "ppid", "sid", "pgid")), ("fds", ("pid",)),
                        ("containers", ("pid",))):
        t = side.get(name)
        if t is None:
            continue
        if name == "processes":
            same = pc.equal(t.column("vpid"), t.column("pid")).combine_chunks()
            t = t.set_column(t.schema.get_field_index("vpid"), "vpid",
                             _map(t.column("vpid"), keys, vals, same))
        for c in pcols:
            if c in t.column_names:
                t = t.set_column(t.schema.get_field_index(c), c, _map(t.column(c), keys, vals))
        side[name] = t
    for name in ("users", "groups"):
        t = side.get(name)
        if t is not None and t.num_rows:
            host = pc.is_null(t.column("container_id"))
            t = t.set_column(t.schema.get_field_index("name"), "name", pc.if_else(
                host, pc.binary_join_element_wise(t.column("name"), "-b", ""), t.column("name")))
            side[name] = t
    if side.get("cgroups") is not None and side["cgroups"].num_rows:
        t = side["cgroups"]
        side["cgroups"] = t.set_column(t.schema.get_field_index("path"), "path",
                                       pc.binary_join_element_wise("/b", t.column("path"), ""))
    for name, t in side.items():
        kv[(TABLE_KEY_PREFIX + name).encode()] = base64.b64encode(jr.table_to_ipc(t))
    dst.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out.replace_schema_metadata(kv), dst)


def _colliding(a: Path, b: Path, pin: dict[int, int] | None = None) -> dict[int, int]:
    """A bijection of ``b``'s pids onto ``a``'s (as many as there are; 0 and 1 kept),
    the rest to pids neither uses; ``pin``: pairs to use first."""
    pa_, pb = sorted(_pids(a) - {0, 1}), sorted(_pids(b) - {0, 1})
    mapping = {0: 0, 1: 1, **(pin or {})}
    free_a = [p for p in pa_ if p not in mapping.values()]
    rest = [p for p in pb if p not in mapping]
    for x, y in zip(rest, free_a, strict=False):
        mapping[x] = y
    spare = iter(range(3_000_000, 4_000_000))
    for x in rest[len(free_a):]:
        mapping[x] = next(spare)
    return {k: v for k, v in mapping.items() if k in _pids(b) or k in (0, 1)}


def _view(paths: list[Path], lazy: bool = False, scan: bool = True
          ) -> duckdb.DuckDBPyConnection:
    """A connection with the ``events`` view of ``paths``: the full view (``enrich.build``,
    per-row keys from ``fc_pos``), or with ``lazy`` every column but ``evt.deltatime``
    (``build_view``: the keys are computed in the view by hash joins). ``scan=False``:
    as a capture without a scan position (journals): every per-row key from numpy."""
    con = duckdb.connect()
    open_capture(paths).attach(con)
    if not scan:
        con.execute("DROP VIEW raw_events_rn")
    if lazy:
        fields = [f for f in enrich.field_columns() if not f.startswith("evt_deltatime")]
        enrich.build_view(con, "events", sorted(fields))
    else:
        enrich.build(con)
    return con


def _diff(both: duckdb.DuckDBPyConnection, alone: duckdb.DuckDBPyConnection,
          host: str) -> dict[str, int]:
    """Columns (other than _SESSION) where ``host``'s rows of ``both`` differ from ``alone``,
    rows paired by their order (evt_num)."""
    t = alone.sql("SELECT * FROM events ORDER BY evt_num").to_arrow_table()
    u = both.sql(f"SELECT * FROM events WHERE host = '{host}' ORDER BY evt_num").to_arrow_table()
    assert t.num_rows == u.num_rows
    con = duckdb.connect()
    con.register("ta", t)
    con.register("tb", u)
    con.execute("CREATE TABLE a AS SELECT row_number() OVER () AS k, * FROM ta")
    con.execute("CREATE TABLE b AS SELECT row_number() OVER () AS k, * FROM tb")
    bad = {}
    for c in t.column_names:
        if c in _SESSION:
            continue
        n = con.execute(f'SELECT count(*) FROM a JOIN b USING (k) '
                        f'WHERE a."{c}" IS DISTINCT FROM b."{c}"').fetchone()[0]
        if n:
            bad[c] = n
    return bad


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("hosts")
    a = tmp / "host=node-a" / "capture.parquet"
    a.parent.mkdir()
    shutil.copy(SAMPLES / NODE_A / "capture.parquet", a)
    src_b = SAMPLES / NODE_B / "capture.parquet"
    b = tmp / "host=node-b" / "capture.parquet"
    _rewrite(src_b, b, _colliding(a, src_b, _fd_pin(a, src_b)))
    return a, b


def _fd_pin(a: Path, b: Path) -> dict[int, int]:
    """``{Y: X}``: node-b's pid Y closes a descriptor f without a known record, and node-a's
    process X has f in its start snapshot and never closes it."""
    alone = _view([b])
    rows = alone.execute(
        "SELECT pid, fd FROM events WHERE evt_type = 'close' AND fd_name IS NULL "
        "AND fd IS NOT NULL ORDER BY evt_num").fetchall()
    con = duckdb.connect()
    open_capture(a).attach(con)
    snap = con.execute(
        "SELECT f.pid, f.fd FROM raw_fds f WHERE f.name IS NOT NULL AND f.name <> '' "
        "AND NOT EXISTS (SELECT 1 FROM raw_events e WHERE e.pid = f.pid "
        "AND e.syscall = 'close' AND coalesce(e.fd, e.a0) = f.fd) ORDER BY f.pid, f.fd"
    ).fetchall()
    by_fd: dict[int, int] = {}
    for pid, fd in snap:
        by_fd.setdefault(fd, pid)
    for pid, fd in rows:
        if fd in by_fd and pid not in (0, 1):
            return {pid: by_fd[fd]}
    pytest.fail("no close without a record in node-b matching a snapshot descriptor of node-a")


def test_pids_collide(nodes) -> None:
    a, b = nodes
    common = _pids(a) & _pids(b) - {0, 1}
    assert len(common) > 20


@pytest.mark.parametrize(("lazy", "scan"), [(False, True), (True, True), (True, False)],
                         ids=["full", "lazy", "no-scan-position"])
def test_each_hosts_rows_equal_the_host_alone(nodes, lazy: bool, scan: bool) -> None:
    a, b = nodes
    both = _view([a, b], lazy, scan)
    assert both.execute("SELECT count(DISTINCT host) FROM events").fetchall()[0][0] == 2
    for path, host in ((a, "node-a"), (b, "node-b")):
        assert _diff(both, _view([path], lazy, scan), host) == {}, host


def test_descriptor_of_the_same_pid_on_another_host(nodes) -> None:
    """node-b's pid X closes descriptor f that node-a's pid X holds (and never closes):
    the close sees node-b's state (no record), not node-a's descriptor."""
    a, b = nodes
    both = _view([a, b])
    got = both.execute(
        "SELECT e.pid, e.fd, e.fd_name, f.name FROM events e JOIN raw_fds f "
        "ON f.host = 'node-a' AND f.pid = e.pid AND f.fd = e.fd "
        "WHERE e.host = 'node-b' AND e.evt_type = 'close' ORDER BY e.evt_num").fetchall()
    assert got, "the fixture pins such a close"
    alone = _view([b])
    want = alone.execute(
        "SELECT pid, fd, fd_name FROM events WHERE evt_type = 'close' "
        "AND (pid, fd) IN (SELECT (pid, fd) FROM (VALUES " +
        ", ".join(f"({p}, {f})" for p, f, _, _ in got) + ") t(pid, fd)) ORDER BY evt_num"
    ).fetchall()
    assert [r[:3] for r in got] == want
    # the pinned close: node-a's pid holds a named descriptor f, node-b's knows none
    assert any(r[2] is None and r[3] for r in got)


def test_users_are_the_hosts_own(nodes) -> None:
    a, b = nodes
    both = _view([a, b])
    names = dict(both.execute(
        "SELECT host, list(DISTINCT user_name ORDER BY user_name) FROM events "
        "WHERE user_name IS NOT NULL GROUP BY host").fetchall())
    # node-b's host users are renamed (its containers' are not)
    assert any(n.endswith("-b") for n in names["node-b"])
    assert not any(n.endswith("-b") for n in names["node-a"])


def test_one_host_has_no_remap(nodes) -> None:
    from fcap.analyze.state import hosts
    a, _ = nodes
    con = _view([a])
    assert hosts.names(con) is None
    assert hosts.rel(con, "raw_events") == "raw_events"


def test_uid_arguments_name_the_hosts_users(nodes) -> None:
    """``evt.arg.uid`` of setuid renders the uid with the user table of the event's host."""
    from fcap.analyze.fields.catalog import lookup

    a, b = nodes
    sql = lookup("evt.arg", "uid").sql
    q = f"SELECT {sql} FROM events e WHERE e.evt_type = 'setuid' ORDER BY e.evt_num"
    both = _view([a, b])
    for path, host in ((a, "node-a"), (b, "node-b")):
        got = both.execute(q.replace("ORDER BY", f"AND e.host = '{host}' ORDER BY")).fetchall()
        assert got and got == _view([path]).execute(q).fetchall(), host
    names = [r[0] for r in both.execute(q).fetchall()]
    assert any(n.endswith("-b") for n in names) and not all(n.endswith("-b") for n in names)
