"""proc.exe_ino / .ctime / .mtime / .ctime_duration_proc_start: exec rows (schema 3)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from fields_fixture import T0, Raw, build, fields

from fcap.schema import EVENTS, SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
_NAMES = ["proc.exe_ino", "proc.exe_ino.ctime", "proc.exe_ino.mtime",
          "proc.exe_ino.ctime_duration_proc_start"]


def test_schema_columns() -> None:
    assert SCHEMA_VERSION >= 3
    assert str(EVENTS.field("exe_ino").type) == "uint64"
    for name in ("exe_ino_ctime", "exe_ino_mtime"):
        assert str(EVENTS.field(name).type) == "int64"


def test_inode_time_offsets_fall_back_to_none(monkeypatch) -> None:
    from fcap.capture import btf, probe

    if not btf.VMLINUX.exists():
        pytest.skip("no kernel BTF")
    got = probe.inode_time_offsets()
    assert set(got) == {"OFF_inode_ctime_sec", "OFF_inode_ctime_nsec", "OFF_inode_mtime_sec",
                        "OFF_inode_mtime_nsec"}
    assert all(v >= 0 for v in got.values())  # this kernel has one of the known layouts
    monkeypatch.setattr(probe, "INODE_TIMES", ({"OFF_inode_ctime_sec": "inode.no_such"},))
    assert set(probe.inode_time_offsets().values()) == {-1}


# --- field logic on hand-built rows ------------------------------------------------------


def test_exec_image_values_follow_forks_and_the_next_exec() -> None:
    r = Raw()
    r.add("processes", pid=10, ppid=1, comm="sh", exe="/bin/sh", exepath="/bin/sh",
          argv=["sh"], start_ts=T0 - 10_000, exe_ino=77)
    r.ev("clone", 11, res=0, ppid=10, comm="sh", dt=1_000)  # child side: start 11's clone ts
    start = r.events[-1]["ts"]
    ctime, mtime = start - 5_000_000_000, start - 9_000_000_000
    r.ev("execve", 11, res=0, ppid=10, comm="drop", exe="/tmp/drop", argv=["/tmp/drop"],
         exe_ino=4242, exe_ino_ctime=ctime, exe_ino_mtime=mtime)
    r.ev("openat", 11, res=3, fd=3, path="/etc/hosts", ppid=10, comm="drop")
    r.ev("clone", 12, res=0, ppid=11, comm="drop")  # a forked child keeps the image
    r.ev("openat", 12, res=3, fd=3, path="/etc/hosts", ppid=11, comm="drop")
    r.ev("execve", 12, res=0, ppid=11, comm="true", exe="/bin/true", argv=["true"])  # schema 2
    r.ev("openat", 12, res=3, fd=3, path="/etc/passwd", ppid=11, comm="true")
    r.ev("openat", 10, res=3, fd=3, path="/etc/passwd", ppid=1, comm="sh")
    con = build(r)
    got = fields(con, ["proc.pid", "evt.type", *_NAMES])
    dur = start - ctime
    assert got == [
        (11, "clone", 77, None, None, None),  # the image of sh (snapshot: inode only)
        (11, "execve", 4242, ctime, mtime, dur),
        (11, "openat", 4242, ctime, mtime, dur),
        (12, "clone", 4242, ctime, mtime, dur),  # inherited, not recomputed (libsinsp)
        (12, "openat", 4242, ctime, mtime, dur),
        (12, "execve", None, None, None, None),  # not recorded (older capture)
        (12, "openat", None, None, None, None),
        (10, "openat", 77, None, None, None),  # snapshot: inode only
    ]


def test_clone_row_of_pid_11_has_the_parent_image() -> None:
    r = Raw()
    r.add("processes", pid=10, ppid=1, comm="sh", exe="/bin/sh", exepath="/bin/sh",
          argv=["sh"], start_ts=T0 - 10_000, exe_ino=77)
    r.ev("clone", 11, res=0, ppid=10, comm="sh")
    assert fields(build(r), ["proc.exe_ino"]) == [(77,)]


def test_rule_output_prints_decimal_ns(tmp_path: Path) -> None:
    from fcap.analyze.regress.engine_bridge import replay_json
    from fcap.capture.synth import make_capture

    ctime, mtime = 1_700_000_000_123_456_789, 1_600_000_000_000_000_001
    cap = make_capture(tmp_path / "x.parquet", [
        {"syscall": "execve", "pid": 500, "ppid": 1, "comm": "drop", "exe": "/tmp/drop",
         "argv": ["/tmp/drop"], "res": 0, "exe_ino": 99, "exe_ino_ctime": ctime,
         "exe_ino_mtime": mtime},
    ])
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "- rule: exe times\n  desc: t\n  condition: evt.type = execve and proc.exe_ino > 0\n"
        "  output: ino=%proc.exe_ino c=%proc.exe_ino.ctime m=%proc.exe_ino.mtime "
        "d=%proc.exe_ino.ctime_duration_proc_start\n  priority: WARNING\n")
    alerts = replay_json([cap], [rules])
    assert len(alerts) == 1
    assert f"ino=99 c={ctime} m={mtime} " in alerts[0]["output"]
    assert alerts[0]["output_fields"]["proc.exe_ino.mtime"] == mtime


def test_older_capture_reads_null() -> None:
    caps = sorted((REPO / "samples").glob("*/capture.parquet"))
    if not caps:
        pytest.skip("no bundled sample capture")
    assert "exe_ino" not in pq.read_schema(caps[0]).names
    from fcap.api import open as fcap_open

    api = fcap_open(caps[0])
    try:
        got = api.sql("SELECT count(*) FILTER (WHERE evt_type = 'execve'), "
                      "count(proc_exe_ino_ctime), count(proc_exe_ino_mtime) FROM events").fetchall()
    finally:
        api.close()
    assert got[0][0] > 0 and got[0][1:] == (0, 0)


# --- live recording ---------------------------------------------------------------------------

_MTIME = 1_500_000_000_123_456_789


@pytest.mark.live
def test_live_exec_of_a_copied_binary(tmp_path: Path) -> None:
    from fcap.analyze import enrich
    from fcap.capture.reader import open_capture
    from live_support import record_while

    exe = tmp_path / "fcap-exeino-true"
    shutil.copy("/bin/true", exe)
    os.chmod(exe, 0o755)
    os.utime(exe, ns=(_MTIME, _MTIME))
    st = os.stat(exe)
    out = tmp_path / "live.parquet"
    res: dict = {}

    def work() -> None:
        p = subprocess.run([str(exe)], check=True)
        res["rc"] = p.returncode

    record_while(out, work, syscalls="default")
    assert res["rc"] == 0
    con = duckdb.connect()
    open_capture(out).attach(con)
    raw = con.execute("SELECT exe_ino, exe_ino_ctime, exe_ino_mtime, laddr, raddr FROM raw_events "
                      "WHERE syscall = 'execve' AND res = 0 AND exe = ?", [str(exe)]).fetchall()
    assert raw == [(st.st_ino, st.st_ctime_ns, _MTIME, None, None)]
    enrich.build(con)
    got = con.execute(
        "SELECT proc_exe_ino, proc_exe_ino_ctime, proc_exe_ino_mtime, "
        "proc_exe_ino_ctime_duration_proc_start, proc_pid_ts FROM events "
        "WHERE evt_type = 'execve' AND evt_res = 'SUCCESS' AND proc_exepath = ?", [str(exe)]
    ).fetchall()
    assert len(got) == 1
    ino, ctime, mtime, dur, start = got[0]
    assert (ino, ctime, mtime) == (st.st_ino, st.st_ctime_ns, _MTIME)
    assert dur == start - st.st_ctime_ns and dur > 0  # copied before the fork
    # other exec rows of the recording carry their own executables' inodes
    n, with_ino = con.execute("SELECT count(*), count(exe_ino) FROM raw_events "
                              "WHERE syscall IN ('execve', 'execveat') AND res = 0").fetchone()
    assert n >= 1 and with_ino == n
