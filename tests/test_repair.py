"""Crash recovery: kill -9 a writing process, read the journal, repair it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fcap.capture import journal as jr
from fcap.capture.reader import open_capture
from fcap.capture.repair import repair

from fcap.errors import CaptureError

WRITER = r"""
import sys, time
from pathlib import Path
import pyarrow as pa
from fcap.capture.synth import events_table
from fcap.capture.writer import CaptureWriter
out = Path(sys.argv[1]); rotate = sys.argv[2] == "rotate"
w = CaptureWriter(out, meta={"hostname": "crashy"}, side_tables={},
                  rotate_bytes=30_000 if rotate else None)
i = 0
while True:
    rows = [{"ts": i * 1000 + k, "syscall": "openat", "res": i, "path": f"/tmp/f{k}"}
            for k in range(200)]
    w.write(events_table(rows).to_batches()[0])
    w.flush()
    print(i, time.monotonic(), flush=True)
    i += 1
    time.sleep(0.05)
"""


def run_and_kill(tmp_path: Path, out: Path, mode: str, seconds: float = 2.0) -> list[tuple[int, float]]:
    """Run the writer until it has flushed for ``seconds``, kill -9 it.

    Returns the (batch, monotonic time) pairs flushed more than a second before the kill.
    """
    script = tmp_path / "w.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(out), mode],
                            stdout=subprocess.PIPE, text=True)
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not lines and time.monotonic() < deadline:  # interpreter start-up under load
        time.sleep(0.02)
    assert lines, "the writer flushed nothing within 60 s"
    time.sleep(seconds)
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    reader.join(timeout=10)
    # the last line may be cut by the kill
    flushed = [(int(f[0]), float(f[1])) for f in (ln.split() for ln in lines if ln.endswith("\n"))
               if len(f) == 2]
    return [(i, t) for i, t in flushed if t < killed_at - 1.0]


def test_kill9_journal_readable_and_repairable(tmp_path: Path) -> None:
    out = tmp_path / "trace.parquet"
    old = run_and_kill(tmp_path, out, "single")
    assert old, "nothing was flushed more than a second before the kill"
    journal = jr.journal_path(out)
    assert journal.is_dir() and not out.exists()
    # the reader reads the unfinished journal as it is
    live = open_capture(journal)
    assert live.files[0].kind == "journal"
    ev = live.events_table()
    got = set(ev.column("res").to_pylist())
    assert {i for i, _ in old} <= got
    # so does the output path itself (it falls back to the journal)
    assert open_capture(out).files[0].kind == "journal"
    files = repair(out)
    assert files == [out] and not journal.exists()
    cap = open_capture(out)
    m = cap.meta[0]
    assert m["complete"] is False and m["repaired"] is True and m["hostname"] == "crashy"
    res = cap.events_table().column("res").to_pylist()
    assert {i for i, _ in old} <= set(res)
    assert m["events_written"] == len(res)


def test_truncated_last_message_is_dropped(tmp_path: Path) -> None:
    out = tmp_path / "trace.parquet"
    run_and_kill(tmp_path, out, "single", seconds=1.2)
    events = jr.journal_path(out) / jr.EVENTS_FILE
    before = sum(b.num_rows for b in jr.read_events(jr.journal_path(out)))
    # where the last complete batch ends (the kill may have left a partial one after it)
    import pyarrow as pa
    import pyarrow.ipc as ipc

    ends = []
    with pa.OSFile(str(events)) as f:
        reader = ipc.open_stream(f)
        try:
            while True:
                reader.read_next_batch()
                ends.append(f.tell())
        except (StopIteration, OSError, pa.ArrowInvalid):
            pass
    with open(events, "r+b") as f:
        f.truncate(ends[-1] - 50)  # cut into the last complete batch
    after = sum(b.num_rows for b in jr.read_events(jr.journal_path(out)))
    assert after == before - 200
    files = repair(jr.journal_path(out))  # the .partial path works too
    assert open_capture(files).num_events == after


def test_kill9_rotated_directory(tmp_path: Path) -> None:
    out = tmp_path / "segments"
    old = run_and_kill(tmp_path, out, "rotate", seconds=2.5)
    finished = sorted(out.glob("*.parquet"))
    partial = sorted(out.glob("*.partial"))
    assert finished, "no segment was finalized before the kill"
    # the segment being written, plus maybe one killed while being converted
    assert 1 <= len(partial) <= 2
    # finished segments and the journal read as one capture
    cap = open_capture(out)
    assert {i for i, _ in old} <= set(cap.events_table().column("res").to_pylist())
    repaired = repair(out)
    assert len(repaired) == len(partial) and not list(out.glob("*.partial"))
    cap = open_capture(out)
    # only the segment that was being written when the kill came is incomplete
    assert [m["complete"] for m in cap.meta].count(False) == 1
    assert sorted(m["segment"] for m in cap.meta) == list(range(len(cap.meta)))
    assert {i for i, _ in old} <= set(cap.events_table().column("res").to_pylist())


def test_repair_errors(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such capture"):
        repair(tmp_path / "missing.parquet")
    done = tmp_path / "done.parquet"
    done.write_bytes(b"PAR1")
    with pytest.raises(CaptureError, match="nothing to repair"):
        repair(done)
    with pytest.raises(CaptureError, match="no unfinished journal"):
        repair(tmp_path)


def test_empty_journal_stub(tmp_path: Path) -> None:
    stub = tmp_path / "t.parquet.partial"
    stub.mkdir()
    for arg in (tmp_path / "t.parquet", stub):
        with pytest.raises(CaptureError, match="before writing anything"):
            repair(arg)
