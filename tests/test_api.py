"""``fcap.open`` and the Capture API: views as attributes, SQL with parameters, results,
reprs, conditions, alerts, errors; without root and without bcc."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import hunt_support
import pyarrow as pa
import pytest
from fcap.analyze.hunt.errors import QueryError
from fcap.analyze.hunt.result import MissingOptionalDependency, Result

import fcap
from fcap.errors import CaptureError, UsageError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return hunt_support.sample_capture(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def cap(sample):  # type: ignore[no-untyped-def]
    with fcap.open(sample) as c:
        yield c


def test_open_resolves_lazily() -> None:
    import fcap.api

    assert fcap.open is fcap.api.open


def test_views_as_attributes(cap) -> None:  # type: ignore[no-untyped-def]
    for name in ("events", "processes", "process_events", "file_events", "socket_events",
                 "containers", "users", "shell_commands"):
        res = getattr(cap, name)
        assert isinstance(res, Result)
        assert len(res) > 0, name
    assert len(cap.containers) == 2
    assert cap.views_version == "1.0"
    assert {"processes", "file_events", "raw_events"} <= set(cap.views())


def test_sql_with_params(cap) -> None:  # type: ignore[no-untyped-def]
    q = "SELECT name FROM processes WHERE pid = ? AND source = ?"
    assert cap.sql(q, [5002, "exec"]).fetchall() == [("cat",)]
    q = "SELECT count(*) FROM file_events WHERE path = $p"
    assert cap.sql(q, {"p": "/etc/shadow"}).fetchall() == [(2,)]


def test_results_are_relations(cap) -> None:  # type: ignore[no-untyped-def]
    res = cap.sql("SELECT pid, name FROM processes WHERE source = 'exec' ORDER BY start_ts")
    table = res.to_arrow_table()
    assert isinstance(table, pa.Table) and table.column_names == ["pid", "name"]
    assert table.column("name").to_pylist()[:3] == ["cat", "sudo", "cat"]
    # relation methods chain and stay wrapped
    sub = res.filter("name = 'cat'").order("pid")
    assert isinstance(sub, Result)
    assert sub.fetchall() == [(5000, "cat"), (5002, "cat"), (6002, "cat")]
    assert res.rows()[0] == {"pid": 5000, "name": "cat"}
    assert res.columns == ["pid", "name"]


def test_repr_shows_schema_count_and_rows(cap) -> None:  # type: ignore[no-untyped-def]
    res = cap.sql("SELECT pid, name FROM processes WHERE source = 'exec' ORDER BY start_ts")
    n = len(res)
    text = repr(res)
    assert text.splitlines()[0] == f"fcap result: {n} rows x 2 columns"
    assert "schema: pid INTEGER, name VARCHAR" in text
    assert "5000" in text and f"... {n - 10} more rows" in text
    page = res._repr_html_()
    assert "<table>" in page and f"{n} rows x 2 columns" in page and "<small>INTEGER</small>" in page
    assert page.count("<tr>") == 11  # header + 10 preview rows
    capr = repr(cap)
    assert "hosts node-1" in capr and "file_events" in capr and "contract 1.0" in capr
    assert "<ul>" in cap._repr_html_()


def test_html_escapes_values(cap) -> None:  # type: ignore[no-untyped-def]
    page = cap.sql("SELECT '<script>x</script>' AS s").relation
    assert "&lt;script&gt;" in Result(page)._repr_html_()


@pytest.mark.skipif(importlib.util.find_spec("pandas") is not None, reason="pandas is installed")
def test_df_without_pandas_says_so(cap) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MissingOptionalDependency, match="pip install pandas"):
        cap.processes.df()


@pytest.mark.skipif(importlib.util.find_spec("polars") is not None, reason="polars is installed")
def test_pl_without_polars_says_so(cap) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MissingOptionalDependency, match="pip install polars"):
        cap.processes.pl()


def test_df_and_pl_when_installed(cap) -> None:  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("pandas") is None and importlib.util.find_spec("polars") is None:
        pytest.skip("neither pandas nor polars is installed (both optional)")
    if importlib.util.find_spec("pandas") is not None:
        assert list(cap.containers.df()["container_id"]) == ["a1b2c3d4e5f6", "f00dfeedbeef"]
    if importlib.util.find_spec("polars") is not None:
        assert cap.containers.pl().height == 2


def test_errors(cap, sample, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError, match="unknown view 'procs'") as info:
        cap.view("procs")
    assert "processes" in str(info.value)
    with pytest.raises(QueryError) as info:
        cap.sql("SELECT nme FROM processes")
    assert info.value.location is not None and info.value.location.col == 8
    with pytest.raises(UsageError, match="no rules"):
        cap.alerts()
    with pytest.raises(CaptureError, match=r"nope\.parquet"):
        fcap.open(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 but not really")
    with pytest.raises(CaptureError, match=r"bad\.parquet"):
        fcap.open([sample, bad])
    with pytest.raises(UsageError):
        fcap.open([])


def test_close_and_context_manager(sample) -> None:  # type: ignore[no-untyped-def]
    with fcap.open(sample) as c:
        assert len(c.users) == 6
    with pytest.raises(Exception):  # noqa: B017 - any DuckDB error: the connection is closed
        c.sql("SELECT 1")


def test_filter_with_falco_condition(cap) -> None:  # type: ignore[no-untyped-def]
    res = cap.filter("evt.type in (open, openat, openat2) and fd.name = /etc/shadow and evt.rawres >= 0", ["proc.name", "proc.pid", "user.name"])
    assert res.columns == ["proc.name", "proc.pid", "user.name"]
    assert res.fetchall() == [("cat", 5002, "root")]
    every = cap.filter("proc.name = sudo")
    assert "evt_num" in every.columns and len(every) > 0


def test_alerts_with_rules(sample, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "- rule: Read shadow\n"
        "  desc: test\n"
        "  condition: evt.type in (open, openat) and fd.name = /etc/shadow and evt.rawres >= 0\n"
        "  output: shadow read by %proc.name (pid=%proc.pid)\n"
        "  priority: WARNING\n"
    )
    with fcap.open(sample, rules=rules) as c:
        rows = c.alerts().project("rule, priority, output").fetchall()
        assert [r[:2] for r in rows] == [("Read shadow", "Warning")]
        assert rows[0][2].startswith("shadow read by cat (pid=5002)")
        # alerts join back to events
        joined = c.sql("SELECT e.proc_name FROM alerts a JOIN events e USING (evt_num)").fetchall()
        assert joined == [("cat",)]


def test_works_without_root_and_without_bcc(sample, request) -> None:  # type: ignore[no-untyped-def]
    """A subprocess where bcc cannot be imported and, when we are root, uid is nobody's."""
    readable = Path(tempfile.mkdtemp(prefix="fcap-nonroot-"))  # /tmp: reachable by nobody
    request.addfinalizer(lambda: shutil.rmtree(readable, ignore_errors=True))
    target = readable / "c.parquet"
    target.write_bytes(Path(sample).read_bytes())
    target.chmod(0o644)
    readable.chmod(0o755)
    # Drop to nobody when we are root. The interpreter may live where nobody cannot read
    # (a pyenv under /root), so everything is imported first, then privileges are dropped.
    drop = os.geteuid() == 0
    code = (
        "import sys, os\n"
        "sys.modules['bcc'] = None\n"
        f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "import fcap, fcap.api, fcap.capture.reader, fcap.capture.writer, pyarrow.parquet\n"
        "import fcap.analyze.enrich, fcap.analyze.compile, fcap.analyze.fields.catalog\n"
        "try:\n    import fcap.analyze.sessions\nexcept ImportError:\n    pass\n"
        f"if {drop}:\n"
        "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        f"cap = fcap.open({str(target)!r})\n"
        "print(os.geteuid(), cap.sql(\"SELECT count(*) FROM file_events WHERE path = '/etc/shadow'\").fetchall()[0][0])\n"
        "print('bcc' in sys.modules and sys.modules['bcc'] is not None)\n"
    )
    env = {**os.environ, "HOME": str(readable), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=readable, check=False)
    assert proc.returncode == 0, proc.stderr
    uid, n = proc.stdout.split("\n")[0].split()
    assert n == "2"
    assert (int(uid) != 0) if drop else (int(uid) == os.geteuid())
    assert proc.stdout.split("\n")[1] == "False"


def test_events_built_on_first_use_and_shaped_by_the_queries(sample) -> None:  # type: ignore[no-untyped-def]
    """Opening does not build the enriched events view; queries shape it (it only grows)."""
    import fcap.api

    calls: list[list[str] | None] = []
    real = fcap.api._build_events

    def counting(con, fields):  # type: ignore[no-untyped-def]
        calls.append(fields)
        real(con, fields)

    fcap.api._build_events = counting  # type: ignore[assignment]
    try:
        with fcap.open(sample) as c:
            assert len(c.processes) > 0 and len(c.file_events) > 0
            assert calls == []
            assert "events" in c.views()
            n = c.sql("SELECT count(*) FROM events").fetchall()[0][0]
            assert n == c.sql("SELECT count(*) FROM raw_events").fetchall()[0][0]
            c.sql("SELECT count(*) FROM events").fetchall()
            assert calls == [[]]
            plan = c.con.execute("EXPLAIN SELECT count(*) FROM events").fetchall()[0][1]
            assert "fc_chain" not in plan and "fc_fdrec" not in plan
            c.sql("CREATE VIEW names AS SELECT DISTINCT proc_name FROM events")
            assert calls[-1] == ["proc_name"]
            c.sql("SELECT count(fd_name) FROM events").fetchall()
            assert calls[-1] == ["fd_name", "proc_name"]
            assert len(c.sql("SELECT * FROM names").fetchall()) > 0  # still has proc_name
            c.sql("SELECT proc_name FROM events LIMIT 1").fetchall()
            assert len(calls) == 3
            full = c.sql("SELECT * FROM events").columns
            assert calls[-1] is None and "k8s_pod_name" in full and "proc_pname" in full
            c.sql("SELECT user_name FROM events LIMIT 1").fetchall()
            assert len(calls) == 4
    finally:
        fcap.api._build_events = real  # type: ignore[assignment]


def test_open_prepares_the_state_tables_unless_told_not_to(sample) -> None:  # type: ignore[no-untyped-def]
    """fcap.open builds the small state tables of events (not the view, nothing per
    event); prepare=False leaves them to the first query over events."""
    from fcap.analyze import enrich

    with fcap.open(sample) as c:
        assert enrich.prepared(c.con)
        tables = {r[0] for r in c.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "fc_chain" in tables and not tables & {"fc_pos", "fc_rid", "fc_fdrec"}
        assert "events" not in {r[0] for r in c.con.execute(
            "SELECT view_name FROM duckdb_views()").fetchall()}
        n = c.sql("SELECT count(*) FROM events WHERE proc_name IS NOT NULL").fetchall()[0][0]
    with fcap.open(sample, prepare=False) as c:
        assert not enrich.prepared(c.con)
        assert c.sql("SELECT count(*) FROM events WHERE proc_name IS NOT NULL").fetchall()[0][0] == n
        assert enrich.prepared(c.con)


def test_statements_without_result(sample) -> None:  # type: ignore[no-untyped-def]
    with fcap.open(sample) as c:
        c.sql("CREATE VIEW shells AS SELECT * FROM processes WHERE name IN ('sh', 'bash')")
        assert "shells" in c.views()
        assert c.sql("SELECT count(*) FROM shells").fetchall()[0][0] > 0
