"""``fcap info`` and ``fcap repair`` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from fcap.capture.synth import make_capture
from fcap.capture.writer import CaptureWriter

from fcap.schema import SCHEMA_VERSION
from tests.test_writer import batch

CID = "ab" * 32


def fcap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fcap", *args], capture_output=True, text=True,
                          timeout=60)


def sample(path: Path, drops: list[int]) -> list[dict]:
    events = ([{"syscall": "openat", "pid": 5, "path": "/etc/passwd"}] * 7
              + [{"syscall": "execve", "pid": 6, "res": 0, "container_id": CID}] * 2
              + [{"syscall": "connect", "pid": 5}] * 3)
    make_capture(path, events, processes=[{"pid": 5}, {"pid": 6}, {"pid": 7}],
                 containers=[{"id": CID, "name": "shell", "image": "busybox:1.36",
                              "pod_name": "web-0", "pod_namespace": "prod"}],
                 meta={"hostname": "node-9", "drops_per_cpu": drops, "drops_total": sum(drops),
                       "syscalls": ["connect", "execve", "openat"],
                       "filters": {"comms": ["bash"], "pids": []}})
    return events


def test_info_text_and_json(tmp_path: Path) -> None:
    p = tmp_path / "c.parquet"
    events = sample(p, [0, 0])
    r = fcap("info", str(p))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "node-9" in out and "status      complete" in out
    assert f"events      {len(events)}" in out
    assert "ababababab" in out and "shell" in out and "pod prod/web-0" in out
    assert "drops       0" in out and "WARNING" not in out + r.stderr
    assert "syscalls    3 recorded (connect, execve, openat)" in out
    assert "filters     comms=['bash']" in out
    j = json.loads(fcap("info", "--json", str(p)).stdout)
    assert j["events_by_type"] == dict(Counter(e["syscall"] for e in events))
    assert j["processes"] == {"snapshot": 3, "pids_in_events": 2, "execs": 2}
    assert j["hosts"][0]["host"] == "node-9" and j["schema_versions"] == [SCHEMA_VERSION]
    assert j["containers"][0]["events"] is True


def test_info_warns_loudly_on_drops(tmp_path: Path) -> None:
    p = tmp_path / "d.parquet"
    sample(p, [0, 1234])
    r = fcap("info", str(p))
    assert r.returncode == 0
    assert "WARNING: 1,234 events were DROPPED" in r.stdout
    assert "cpu1: 1,234" in r.stdout and "DROPPED" in r.stderr
    assert json.loads(fcap("info", "--json", str(p)).stdout)["drops_per_cpu"] == {"node-9": [0, 1234]}


def test_info_bad_inputs_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    for arg in (str(bad), str(tmp_path / "missing.parquet")):
        r = fcap("info", arg)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert r.stderr.startswith("fcap: ") and arg in r.stderr


def test_repair_command_and_info_status(tmp_path: Path) -> None:
    out = tmp_path / "crashed.parquet"
    w = CaptureWriter(out, meta={"hostname": "h"}, side_tables={})
    w.write(batch(0, 40))
    w.flush()
    # the writer is abandoned without close(), as after a crash
    r = fcap("info", str(out))
    assert r.returncode == 0 and "UNFINISHED JOURNAL" in r.stdout and "events      40" in r.stdout
    r = fcap("repair", str(out))
    assert r.returncode == 0, r.stderr
    assert f"repaired {out}: 40 events kept" in r.stdout
    r = fcap("info", str(out))
    assert "REPAIRED" in r.stdout
    r = fcap("repair", str(out))
    assert r.returncode == 2 and "nothing to repair" in r.stderr


def test_info_segments(tmp_path: Path) -> None:
    d = tmp_path / "rot"
    w = CaptureWriter(d, meta={"hostname": "h"}, side_tables={}, rotate_bytes=1)
    for i in range(3):
        w.write(batch(i * 10, 10))
        w.flush()
    files = w.close()
    j = json.loads(fcap("info", "--json", str(d)).stdout)
    assert j["segments"] == len(files) >= 3 and j["events"] == 30
    assert sorted(f["segment"] for f in j["files"]) == list(range(len(files)))


def test_info_corrupt_row_data_one_line(tmp_path: Path) -> None:
    from fcap.capture.synth import generate

    p = generate(tmp_path / "g.parquet", 300_000, seed=1)
    data = bytearray(p.read_bytes())
    for i in range(1000, len(data) // 2, 97):  # page data only; the footer stays valid
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))
    r = fcap("info", str(p))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"fcap: {p}: corrupt capture data")
