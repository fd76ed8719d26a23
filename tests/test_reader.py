"""open_capture on every input form, and clear errors on bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fcap.capture import journal as jr
from fcap.capture.reader import open_capture
from fcap.capture.synth import make_capture
from fcap.capture.writer import CaptureWriter

from fcap.errors import CaptureError
from fcap.schema import SIDE_TABLES

CONT = {"id": "c" * 64, "name": "web", "image": "nginx:1"}


def cap(path: Path, host: str, n: int, start: int = 0) -> Path:
    events = [{"ts": 10**18 + start + i, "syscall": "openat", "pid": 7, "res": start + i}
              for i in range(n)]
    return make_capture(path, events, containers=[CONT], meta={"hostname": host})


def test_single_file_attach_is_lazy(tmp_path: Path) -> None:
    p = cap(tmp_path / "a.parquet", "alpha", 5)
    c = open_capture(str(p))
    con = duckdb.connect()
    c.attach(con)
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    assert kinds["raw_events"] == "VIEW"
    for name in SIDE_TABLES:
        assert kinds[f"raw_{name}"] == "BASE TABLE"
    assert "read_parquet" in con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'raw_events'").fetchone()[0]
    assert con.execute("SELECT count(*), min(host), max(host) FROM raw_events").fetchone() == (
        5, "alpha", "alpha")
    assert con.execute("SELECT host, name FROM raw_containers").fetchall() == [("alpha", "web")]
    row = con.execute("SELECT host, path, hostname, complete, events_written FROM raw_meta").fetchone()
    assert row == ("alpha", str(p), "alpha", True, 5)
    assert con.execute("SELECT typeof(syscall), typeof(argv) FROM raw_events LIMIT 1").fetchone() == (
        "VARCHAR", "VARCHAR[]")


def test_list_glob_and_rotated_dir(tmp_path: Path) -> None:
    d = tmp_path / "rot"
    d.mkdir()
    cap(d / "fcap-1.parquet", "h", 3, 0)
    cap(d / "fcap-2.parquet", "h", 4, 100)
    assert open_capture(d).num_events == 7
    assert open_capture(str(d / "fcap-*.parquet")).num_events == 7
    c = open_capture([d / "fcap-1.parquet", d / "fcap-2.parquet"])
    assert len(c.paths) == 2
    # the same container seen in both segments appears once
    assert c.side_table("containers").num_rows == 1
    con = duckdb.connect()
    c.attach(con)
    assert con.execute("SELECT count(*) FROM raw_events").fetchone()[0] == 7
    assert con.execute("SELECT count(*) FROM raw_meta").fetchone()[0] == 2
    # raw_events_rn: the scan position over both files (what evt_num is computed from)
    rows = con.execute("SELECT _rn, res FROM raw_events_rn").fetchall()
    assert rows == [(0, 0), (1, 1), (2, 2), (3, 100), (4, 101), (5, 102), (6, 103)]


def test_hive_partitioned_hosts(tmp_path: Path) -> None:
    for host, n in (("node-a", 2), ("node-b", 3)):
        d = tmp_path / f"host={host}" / "date=2026-11-22"
        d.mkdir(parents=True)
        cap(d / "x.parquet", "ignored-meta-name", n)
    c = open_capture(tmp_path)
    assert sorted(c.hosts) == ["node-a", "node-b"]
    con = duckdb.connect()
    c.attach(con)
    assert con.execute("SELECT host, count(*) FROM raw_events GROUP BY 1 ORDER BY 1").fetchall() == [
        ("node-a", 2), ("node-b", 3)]
    # one container row per host
    assert con.execute("SELECT count(*) FROM raw_containers").fetchone()[0] == 2


def test_journal_and_mixed(tmp_path: Path) -> None:
    w = CaptureWriter(tmp_path / "live.parquet", meta={"hostname": "j"}, side_tables={})
    from tests.test_writer import batch

    w.write(batch(0, 20))
    w.set_stats(events_written=20, drops_per_cpu=[0], end_ns=1, shell_lost=3)
    w.flush()
    c = open_capture(tmp_path / "live.parquet.partial")
    assert c.files[0].kind == "journal" and c.meta[0]["complete"] is False
    assert c.meta[0]["shell_lost"] == 3  # extra counters are visible before finalization
    con = duckdb.connect()
    c.attach(con)
    assert con.execute("SELECT count(*), min(host) FROM raw_events").fetchone() == (20, "j")
    # a directory holding a finished capture and a journal reads as one
    cap(tmp_path / "old.parquet", "j", 3)
    assert duckdb_count(open_capture(tmp_path)) == 23
    w.close()


def duckdb_count(c) -> int:
    con = duckdb.connect()
    c.attach(con)
    return con.execute("SELECT count(*) FROM raw_events").fetchone()[0]


def test_empty_capture_attaches(tmp_path: Path) -> None:
    p = make_capture(tmp_path / "e.parquet", [])
    assert duckdb_count(open_capture(p)) == 0


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("text.parquet", b"hello world, not parquet\n", "not a Parquet file"),
        ("empty.parquet", b"", "empty file"),
        ("trace.scap", b"\x0a\x0d\x0d\x0a" + b"\0" * 60, "scap file"),
        ("random.bin", bytes(range(256)) * 4, "not a Parquet file"),
    ],
)
def test_foreign_files(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(CaptureError, match=match) as exc:
        open_capture(p)
    assert str(p) in str(exc.value)


def test_plain_parquet_is_not_a_capture(tmp_path: Path) -> None:
    p = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), p)
    with pytest.raises(CaptureError, match="not an fcap capture"):
        open_capture(p)


def test_truncated_capture(tmp_path: Path) -> None:
    p = cap(tmp_path / "t.parquet", "h", 50)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaptureError, match="truncated") as exc:
        open_capture(p)
    assert str(p) in str(exc.value)


def test_corrupt_footer(tmp_path: Path) -> None:
    p = cap(tmp_path / "c.parquet", "h", 50)
    data = bytearray(p.read_bytes())
    flen = int.from_bytes(data[-8:-4], "little")
    for i in range(len(data) - 8 - flen, len(data) - 8, 7):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    with pytest.raises(CaptureError) as exc:
        open_capture(p)
    assert str(p) in str(exc.value)


def test_newer_schema_refused(tmp_path: Path) -> None:
    p = tmp_path / "new.parquet"
    meta = {b"fcap.schema_version": b"99", b"fcap.meta": json.dumps({"hostname": "x"}).encode()}
    pq.write_table(pa.table({"ts": [1], "pid": [1], "syscall": ["openat"]}).replace_schema_metadata(meta), p)
    with pytest.raises(CaptureError, match=r"schema 99.*upgrade fcap"):
        open_capture(p)


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(tmp_path / "nope.parquet")
    with pytest.raises(CaptureError, match="no file matches"):
        open_capture(str(tmp_path / "nope-*.parquet"))
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(CaptureError, match="holds no capture"):
        open_capture(tmp_path / "emptydir")
    bad = tmp_path / "bad.partial"
    bad.mkdir()
    (bad / jr.META_FILE).write_text("{not json")
    with pytest.raises(CaptureError, match="unreadable journal"):
        open_capture(bad)


def test_docs_cover_every_column() -> None:
    """docs/capture-format.md lists exactly the columns of every table and the meta keys."""
    import re

    from fcap.schema import EVENTS, META_FIELDS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "capture-format.md").read_text()
    sections = re.split(r"^### ", doc, flags=re.M)[1:]
    found = {}
    for s in sections:
        title = s.splitlines()[0].split(" ")[0]
        found[title] = set(re.findall(r"^\| `(\w+)` \|", s, flags=re.M))
    schemas = {"events": EVENTS, **SIDE_TABLES}
    for name, schema in schemas.items():
        if name not in ("users", "groups"):
            assert found[name] == set(schema.names), name
    both = set(SIDE_TABLES["users"].names) | set(SIDE_TABLES["groups"].names)
    assert found["users"] == both  # one section documents users and groups
    assert found["fcap.meta"] == set(META_FIELDS)


def test_finalized_journal_not_counted_twice(tmp_path: Path) -> None:
    """Between the rename of a segment and the removal of its journal both exist."""
    w = CaptureWriter(tmp_path / "seg.parquet", meta={}, side_tables={})
    from tests.test_writer import batch

    w.write(batch(0, 10))
    w.flush()
    import shutil

    shutil.copytree(w.journal, tmp_path / "copy.partial")
    w.close()
    (tmp_path / "copy.partial").rename(tmp_path / "seg.parquet.partial")
    assert open_capture(tmp_path).num_events == 10
