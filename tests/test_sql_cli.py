"""``fcap sql`` and ``fcap hunt``: formats, files, error messages without tracebacks."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import hunt_support
import pyarrow.parquet as pq
import pytest
from fcap.analyze.hunt import formats

from fcap.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return hunt_support.sample_capture(tmp_path_factory.mktemp("sqlcli"))


def fcap_cli(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


Q_EXEC = "SELECT pid, ts, time, argv FROM process_events WHERE kind = 'exec' ORDER BY ts LIMIT 3"


def test_table_default(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = fcap_cli(capsys, "sql", str(sample),
                              "SELECT pid, name FROM processes WHERE pid IN (1, 410) ORDER BY pid")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["pid", "name"]
    assert lines[2].split() == ["1", "systemd"]
    assert lines[3].split() == ["410", "sshd"]
    assert lines[-1] == "(2 rows)"


def test_table_truncates_long_values_and_rows(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = fcap_cli(capsys, "sql", str(sample), "--max-rows", "2",
                            "SELECT repeat('x', 300) AS long, pid FROM processes ORDER BY image_id")
    assert code == 0
    lines = out.splitlines()
    assert len(lines[2]) < 80 and lines[2].split()[0].endswith("…")
    n = int(next(iter(hunt_support_count(sample, "processes"))))
    assert lines[-1] == f"(2 of {n} rows shown; use --max-rows, or --format csv/json for all)"


def hunt_support_count(sample: Path, view: str) -> list[int]:
    import fcap

    with fcap.open(sample) as cap:
        return [len(cap.view(view))]


def test_table_fits_width() -> None:
    cols = [f"column_{i}" for i in range(30)]
    rows = [[f"value-{i}-" + "y" * 40 for i in range(30)]]
    text = formats.render_table(cols, rows, max_width=100)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "…" in text.splitlines()[0]  # columns left out from the middle are marked
    assert text.splitlines()[0].startswith("column_0") and text.splitlines()[0].endswith("column_29")


def test_csv_exact(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = fcap_cli(capsys, "sql", str(sample), Q_EXEC, "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["pid", "ts", "time", "argv"]
    # the ts column keeps all 19 digits; the time column its nanoseconds
    import fcap

    with fcap.open(sample) as cap:
        want = cap.sql(Q_EXEC).fetchall()
    assert [int(r[1]) for r in rows[1:]] == [w[1] for w in want]
    assert [json.loads(r[3]) for r in rows[1:]] == [w[3] for w in want]
    ns = want[0][1] % 1_000_000_000
    assert rows[1][2].endswith(f"{ns:09d}".rstrip("0")), rows[1][2]


def test_json_lines_exact(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = fcap_cli(capsys, "sql", str(sample), Q_EXEC, "--format", "json")
    assert code == 0
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 3
    assert objs[0]["argv"] == ["cat", "/etc/shadow"]
    assert objs[0]["ts"] > 1_700_000_000_000_000_000 and isinstance(objs[0]["ts"], int)


def test_parquet_and_output_file(sample, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out_pq = tmp_path / "r.parquet"
    code, _, err = fcap_cli(capsys, "sql", str(sample), Q_EXEC, "--format", "parquet", "-o", str(out_pq))
    assert code == 0, err
    table = pq.read_table(out_pq)
    assert table.column_names == ["pid", "ts", "time", "argv"]
    assert table.num_rows == 3
    out_csv = tmp_path / "r.csv"
    code, out, _ = fcap_cli(capsys, "sql", str(sample), Q_EXEC, "--format", "csv", "-o", str(out_csv))
    assert code == 0 and out == ""
    assert out_csv.read_text().splitlines()[0] == "pid,ts,time,argv"


def test_query_file(sample, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    qf = tmp_path / "q.sql"
    qf.write_text("SELECT count(*) AS n\nFROM shell_commands\nWHERE container_id <> 'host'\n")
    code, out, _ = fcap_cli(capsys, "sql", str(sample), "-f", str(qf), "--format", "csv")
    assert code == 0
    assert out.splitlines() == ["n", "5"]
    qf.write_text("SELECT count(*)\nFROM shell_commands\nWHERE lne = 1\n")
    code, _, err = fcap_cli(capsys, "sql", str(sample), "-f", str(qf))
    assert code == 2
    assert err.startswith(f"fcap: {qf}:3:7: error: unknown column 'lne'")


def test_syntax_error_points_at_position(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = fcap_cli(capsys, "sql", str(sample), "SELECT pid FROM processes WHER pid = 1")
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("fcap: <query>:1:32: error: SQL syntax error")
    assert lines[1] == "    SELECT pid FROM processes WHER pid = 1"
    assert lines[2] == "    " + " " * 31 + "^"
    assert "Traceback" not in err


def test_unknown_view_lists_views(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = fcap_cli(capsys, "sql", str(sample), "SELECT * FROM proceses")
    assert code == 2
    assert "unknown view 'proceses'" in err
    assert "processes" in err and "file_events" in err and "socket_events" in err
    assert "_fcap" not in err  # internal tables are not offered


def test_unknown_column_lists_columns(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = fcap_cli(capsys, "sql", str(sample), "SELECT proc_nam FROM file_events")
    assert code == 2
    assert "unknown column 'proc_nam'" in err
    assert "columns of file_events:" in err and "proc_name" in err


def test_missing_and_foreign_files_are_named(sample, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope.parquet"
    code, _, err = fcap_cli(capsys, "sql", str(missing), "SELECT 1")
    assert code == 2 and str(missing) in err and "Traceback" not in err
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello\n")
    code, _, err = fcap_cli(capsys, "sql", str(sample), str(foreign), "SELECT 1")
    assert code == 2 and str(foreign) in err


def test_usage_errors(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = fcap_cli(capsys, "sql", str(sample))
    assert code == 2 and "give at least one capture and the query" in err
    code, _, err = fcap_cli(capsys, "sql", str(sample), "SELECT 1", "--format", "parquet")
    assert code == 2 and "-o" in err
    code, _, err = fcap_cli(capsys, "sql", str(sample), "SELECT 1", "--format", "xml")
    assert code == 2 and "unknown format" in err


def test_no_traceback_in_a_real_process(tmp_path) -> None:
    """The installed entry point prints one line for a user error."""
    missing = tmp_path / "missing.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "fcap", "sql", str(missing), "SELECT 1"],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"fcap: {missing}: no such file or directory"


def test_hunt_condition_with_columns(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = fcap_cli(capsys, "hunt", str(sample),
                              "proc.name = cat and fd.name startswith /etc",
                              "-c", "proc.cmdline,fd.name", "--format", "csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["proc.cmdline", "fd.name"]
    # the refused open (pid 5000), the open and the close by pid 5002, the open in the pod
    assert sorted(tuple(r) for r in rows[1:]) == [
        ("cat /etc/passwd", "/etc/passwd"),
        ("cat /etc/shadow", "/etc/shadow"),
        ("cat /etc/shadow", "/etc/shadow"),
        ("cat /etc/shadow", "/etc/shadow"),
    ]


def test_hunt_bad_condition_points_at_it(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = fcap_cli(capsys, "hunt", str(sample), "proc.name = cat and and")
    assert code != 0 and "Traceback" not in err
    assert "^" in err
    code, _, err = fcap_cli(capsys, "hunt", str(sample), "proc.nme = cat")
    assert code != 0 and "proc.nme" in err


def test_sql_with_rules_has_alerts(sample, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "- rule: Write below etc\n"
        "  desc: test\n"
        "  condition: evt.type in (open, openat) and evt.is_open_write = true and fd.name startswith /etc/\n"
        "  output: write to %fd.name by %proc.name\n"
        "  priority: ERROR\n"
    )
    code, out, err = fcap_cli(capsys, "sql", str(sample), "--rules", str(rules), "--format", "json",
                              "SELECT a.rule, a.priority, e.proc_name, e.fd_name "
                              "FROM alerts a JOIN events e USING (evt_num)")
    assert code == 0, err
    assert [json.loads(x) for x in out.splitlines()] == [
        {"rule": "Write below etc", "priority": "Error", "proc_name": "sh", "fd_name": "/etc/passwd"}
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: x\n  condition: proc.name = \n")
    code, _, err = fcap_cli(capsys, "sql", str(sample), "--rules", str(bad), "SELECT 1")
    assert code == 2 and "bad.yaml" in err and "Traceback" not in err


def test_schema_lists_views_and_columns(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = fcap_cli(capsys, "sql", str(sample), "--schema")
    assert code == 0, err
    lines = out.splitlines()
    names = [line.split(":")[0] for line in lines]
    assert names[:6] == ["events", "processes", "process_events", "file_events", "socket_events",
                         "containers"]
    file_line = next(line for line in lines if line.startswith("file_events:"))
    assert "path VARCHAR" in file_line and "is_write BOOLEAN" in file_line


def test_json_maps_and_nulls(sample, capsys) -> None:  # type: ignore[no-untyped-def]
    q = ("SELECT MAP {'app': 'web'} AS labels, MAP {}::MAP(VARCHAR, VARCHAR) AS none, "
         "NULL::VARCHAR AS missing, [1, 2] AS xs, '\\x01'::BLOB AS raw")
    code, out, _ = fcap_cli(capsys, "sql", str(sample), q, "--format", "json")
    assert code == 0
    assert json.loads(out) == {"labels": {"app": "web"}, "none": {}, "missing": None, "xs": [1, 2],
                               "raw": "01"}
