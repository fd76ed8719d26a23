"""CaptureWriter: round trip, file modes, rotation, side-table updates, disk full."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fcap.capture import journal as jr
from fcap.capture.reader import open_capture
from fcap.capture.synth import events_table
from fcap.capture.writer import CaptureWriter, check_output, segment_name

from fcap.errors import CaptureError
from fcap.schema import EVENTS, SCHEMA_VERSION, SIDE_TABLES, VERSION_KEY


def batch(start: int, n: int, syscall: str = "openat") -> pa.RecordBatch:
    rows = [{"ts": 1_000_000 + start + i, "pid": 10 + (start + i) % 3, "syscall": syscall,
             "path": f"/etc/file{(start + i) % 5}", "res": start + i} for i in range(n)]
    return events_table(rows).combine_chunks().to_batches()[0]


def procs() -> pa.Table:
    return pa.Table.from_pylist(
        [{"pid": 1, "comm": "init", "argv": ["/sbin/init"]}, {"pid": 10, "comm": "bash"}],
        schema=SIDE_TABLES["processes"])


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_round_trip_schema_meta_and_side_tables(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    w = CaptureWriter(out, meta={"hostname": "h1", "syscalls": ["openat"]},
                      side_tables={"processes": procs()})
    w.write(batch(0, 100))
    w.write(batch(100, 50, "close"))
    w.flush()
    w.set_stats(events_written=150, drops_per_cpu=[0, 3], end_ns=2_000_000)
    files = w.close()
    assert files == [out]
    assert not jr.journal_path(out).exists()
    md = pq.read_metadata(out)
    kv = md.metadata
    assert kv[VERSION_KEY] == str(SCHEMA_VERSION).encode()
    for name in SIDE_TABLES:
        assert f"fcap.table.{name}".encode() in kv
    assert md.num_rows == 150
    assert pq.read_schema(out).remove_metadata().equals(EVENTS.remove_metadata())
    cap = open_capture(out)
    meta = cap.meta[0]
    assert meta["hostname"] == "h1" and meta["complete"] is True and meta["repaired"] is False
    assert meta["events_written"] == 150 and meta["drops_per_cpu"] == [0, 3]
    assert meta["drops_total"] == 3 and meta["end_ns"] == 2_000_000
    assert meta["first_ts"] == 1_000_000 and meta["last_ts"] == 1_000_149
    assert cap.side_table("processes").column("comm").to_pylist() == ["init", "bash"]
    ev = cap.events_table()
    assert ev.num_rows == 150
    assert sorted(ev.column("res").to_pylist()) == list(range(150))
    assert ev.filter(pa.compute.equal(ev["syscall"], "close")).num_rows == 50


def test_modes_0600_and_0700(tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    old = os.umask(0)
    try:
        w = CaptureWriter(out, meta={}, side_tables={})
        w.write(batch(0, 10))
        w.flush()
        j = jr.journal_path(out)
        assert mode(j) == 0o700
        for p in j.rglob("*"):
            assert mode(p) == (0o700 if p.is_dir() else 0o600), p
        w.close()
        assert mode(out) == 0o600
        rot = tmp_path / "rot"
        w = CaptureWriter(rot, meta={}, side_tables={}, rotate_bytes=1)
        w.write(batch(0, 10))
        w.flush()
        files = w.close()
        assert mode(rot) == 0o700
        assert files and all(mode(f) == 0o600 for f in files)
    finally:
        os.umask(old)


def test_rotation_by_size(tmp_path: Path) -> None:
    out = tmp_path / "seg"
    w = CaptureWriter(out, meta={"hostname": "h"}, side_tables={"processes": procs()},
                      rotate_bytes=20_000)
    for i in range(10):
        w.write(batch(i * 1000, 1000))
        w.flush()
    files = w.close()
    assert len(files) >= 3
    assert all(f.parent == out and f.name.startswith("fcap-") for f in files)
    assert not list(out.glob("*.partial"))
    metas = [open_capture(f).meta[0] for f in files]
    assert sorted(m["segment"] for m in metas) == list(range(len(files)))
    for f in files:  # each segment is self-contained
        c = open_capture(f)
        assert c.side_table("processes").num_rows == 2
        assert c.meta[0]["hostname"] == "h"
    cap = open_capture(out)
    assert cap.num_events == 10_000
    assert cap.side_table("processes").num_rows == 2  # de-duplicated over segments


def test_rotation_by_time(tmp_path: Path) -> None:
    out = tmp_path / "seg"
    w = CaptureWriter(out, meta={}, side_tables={}, rotate_seconds=0.3)
    for i in range(8):
        w.write(batch(i * 10, 10))
        w.flush()
        time.sleep(0.1)
    files = w.close()
    assert 2 <= len(files) <= 4
    assert open_capture(out).num_events == 80


def test_segment_name() -> None:
    # 1_795_000_000 s = 20775 days + 40000 s after the epoch: 2026-11-18 11:06:40 UTC
    assert segment_name(1_795_000_000 * 10**9, 0) == "fcap-20261118T110640Z-0001.parquet"


def test_update_side_table_replaces_by_key(tmp_path: Path) -> None:
    out = tmp_path / "c.parquet"
    conts = SIDE_TABLES["containers"]
    w = CaptureWriter(out, meta={}, side_tables={
        "containers": pa.Table.from_pylist([{"id": "a" * 64, "name": "old"}], schema=conts)})
    w.update_side_table("containers", pa.Table.from_pylist(
        [{"id": "a" * 64, "name": "new"}, {"id": "b" * 64, "name": "other"}], schema=conts))
    # the journal holds the merged table at once (a crash keeps it)
    state = jr.read_state(w.journal)
    assert sorted(state.tables["containers"].column("name").to_pylist()) == ["new", "other"]
    w.close()
    t = open_capture(out).side_table("containers")
    assert sorted(zip(t["id"].to_pylist(), t["name"].to_pylist(), strict=True)) == [
        ("a" * 64, "new"), ("b" * 64, "other")]


def test_check_output(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        check_output(tmp_path / "nodir" / "x.parquet")
    f = tmp_path / "exists.parquet"
    f.write_text("x")
    with pytest.raises(CaptureError, match="already exists"):
        check_output(f)
    check_output(f, overwrite=True)
    with pytest.raises(CaptureError, match="is a directory"):
        check_output(tmp_path)
    j = tmp_path / "crashed.parquet.partial"
    j.mkdir()
    with pytest.raises(CaptureError, match="fcap repair"):
        check_output(tmp_path / "crashed.parquet")
    check_output(tmp_path / "fresh.parquet")
    check_output(tmp_path / "rotdir", rotate=True)
    rot = tmp_path / "rot2"
    (rot / "fcap-x-0001.parquet.partial").mkdir(parents=True)
    with pytest.raises(CaptureError, match="did not finish"):
        check_output(rot, rotate=True)
    (rot / "fcap-x-0001.parquet.partial").rmdir()
    (rot / "fcap-x-0001.parquet").write_bytes(b"")
    with pytest.raises(CaptureError, match="already holds capture segments"):
        check_output(rot, rotate=True)
    with pytest.raises(CaptureError, match="is a directory"):
        check_output(rot)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_check_output_unwritable_dir(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    with pytest.raises(CaptureError, match="not writable"):
        check_output(d / "x.parquet")


def test_disk_full_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "full.parquet"
    w = CaptureWriter(out, meta={}, side_tables={})
    w.write(batch(0, 100))
    w.flush()
    from fcap.capture import writer as wmod

    def boom(self, batches):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wmod._Journal, "append", boom)
    w.write(batch(100, 100))
    with pytest.raises(CaptureError, match="disk full"):
        w.flush()
    with pytest.raises(CaptureError, match="disk full"):
        w.write(batch(200, 1))
    monkeypatch.undo()
    from fcap.capture.repair import repair

    files = repair(out)
    cap = open_capture(files)
    assert cap.num_events == 100
    assert cap.meta[0]["complete"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_real_tmpfs(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * 2_500_000)
        out = mnt / "cap.parquet"
        w = CaptureWriter(out, meta={}, side_tables={})
        flushed = 0
        with pytest.raises(CaptureError, match=r"disk full \(ENOSPC\)") as exc:
            for i in range(200):
                rows = [{"ts": i * 100 + k, "syscall": "read", "data": os.urandom(2000)}
                        for k in range(50)]
                w.write(events_table(rows).to_batches()[0])
                w.flush()
                flushed += 50
        assert "fcap repair" in str(exc.value)
        assert flushed > 0
        filler.unlink()
        from fcap.capture.repair import repair

        files = repair(out)
        cap = open_capture(files)
        # everything flushed before the failure is kept
        assert cap.num_events >= flushed
        assert cap.meta[0]["complete"] is False
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_row_groups_across_batches_with_different_dictionaries(tmp_path: Path) -> None:
    batches = []
    for i in range(7):
        rows = [{"ts": i * 1000 + k, "syscall": f"s{i}", "path": f"/p{i}/{k % 3}"}
                for k in range(300)]
        batches += events_table(rows).to_batches()
    out = tmp_path / "d.parquet"
    assert jr.write_parquet(out, iter(batches), {}, {}, row_group_rows=500) == 2100
    md = pq.read_metadata(out)
    assert md.num_row_groups == 5  # 4 full groups of 500 + the rest
    t = open_capture(out).events_table()
    want = [(i * 1000 + k, f"s{i}", f"/p{i}/{k % 3}") for i in range(7) for k in range(300)]
    got = list(zip(t["ts"].to_pylist(), t["syscall"].to_pylist(), t["path"].to_pylist(),
                   strict=True))
    assert got == want


def test_set_stats_extra_meta_keys(tmp_path: Path) -> None:
    """Extra counters given to set_stats (e.g. shell_lost) end up in the final fcap.meta."""
    import json

    from fcap.capture.repair import repair

    from fcap.schema import META_FIELDS, META_KEY

    assert "shell_lost" in META_FIELDS
    out = tmp_path / "x.parquet"
    w = CaptureWriter(out, meta={"hostname": "h"}, side_tables={})
    w.write(batch(0, 10))
    w.set_stats(events_written=10, drops_per_cpu=[2, 0], end_ns=5, shell_lost=2)
    w.close()
    meta = json.loads(pq.read_metadata(out).metadata[META_KEY])
    assert meta["shell_lost"] == 2 and meta["drops_total"] == 2
    assert open_capture(out).meta[0]["shell_lost"] == 2
    # a capture written without the key has it null (every META_FIELDS key is present)
    plain = tmp_path / "p.parquet"
    w = CaptureWriter(plain, meta={}, side_tables={})
    w.write(batch(0, 1))
    w.close()
    assert json.loads(pq.read_metadata(plain).metadata[META_KEY])["shell_lost"] is None
    # a crashed recording keeps the last counters flushed (fcap repair)
    crashed = tmp_path / "c.parquet"
    w = CaptureWriter(crashed, meta={}, side_tables={})
    w.write(batch(0, 5))
    w.set_stats(events_written=5, drops_per_cpu=[0], end_ns=7, shell_lost=4)
    w.flush()
    w._journal.close_stream()  # simulate kill -9: no close()
    repair(crashed)
    assert json.loads(pq.read_metadata(crashed).metadata[META_KEY])["shell_lost"] == 4
    # core keys cannot be overridden this way; values must be JSON
    with pytest.raises(ValueError, match="reserved meta keys: complete"):
        w.set_stats(events_written=1, drops_per_cpu=[], end_ns=1, complete=False)
    with pytest.raises(ValueError, match="JSON"):
        w.set_stats(events_written=1, drops_per_cpu=[], end_ns=1, shell_lost=object())
