"""Live: the raw arguments a0..a5 are the values the syscall was called with.

The kernel side reads the arguments at syscall exit from the task's saved
user registers, except for execve/execveat (their registers belong to the new
image at exit) whose arguments are kept at entry. A child process issues
syscalls through libc's ``syscall()`` with six chosen values (ignored extra
arguments included, they are still in the registers) and prints the
addresses it passed; the recorded a0..a5 must be exactly those. The child
side of a fork has no arguments (null), as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from live_support import record_while

pytestmark = pytest.mark.live

CHILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
target = sys.argv[1].encode()
path = ctypes.create_string_buffer(target)
missing = ctypes.create_string_buffer(target + b"-missing")
true = ctypes.create_string_buffer(b"/bin/true")
argv = (ctypes.c_char_p * 3)(b"/bin/true", b"fcap-args", None)
envp = (ctypes.c_char_p * 1)(None)
out = {}
# openat(AT_FDCWD, path, O_RDONLY|O_CLOEXEC, 0o640) plus two ignored register values
args = [-100, ctypes.addressof(path), 0o2000000, 0o640, 0x1122334455, 0x66778899AA]
fd = libc.syscall(L(257), *[L(a) for a in args])
out["openat"] = [args, fd]
args = [fd, 0x10, 0x20, 0x30, 0x40, 0x50]
out["close"] = [args, libc.syscall(L(3), *[L(a) for a in args])]
# a failing execve: arguments as passed
args = [ctypes.addressof(missing), ctypes.addressof(argv), ctypes.addressof(envp), 7, 8, 9]
out["execve_fail"] = [args, libc.syscall(L(59), *[L(a) for a in args])]
args = [ctypes.addressof(true), ctypes.addressof(argv), ctypes.addressof(envp), 0x71, 0x72, 0x73]
out["execve"] = [args, 0]
print(json.dumps(out), flush=True)
# a successful execve: the row is built from the new image, the arguments from entry
libc.syscall(L(59), *[L(a) for a in args])
os._exit(99)
"""


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def test_arguments_are_the_registers_at_entry(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("x")
    got: dict = {}

    def work() -> None:
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
        stdout, _ = p.communicate(timeout=30)
        got["pid"] = p.pid
        got["out"] = json.loads(stdout.splitlines()[0])
        got["rc"] = p.returncode

    res = record_while(tmp_path / "cap.parquet", work,
                       syscalls="execve,openat,close,clone,clone3,fork,vfork")  # fmt: skip
    assert got["rc"] == 0  # /bin/true ran
    t = pa.concat_tables([pq.read_table(f) for f in res.files])
    t = t.filter(pc.equal(t["pid"], got["pid"]))
    rows = t.to_pylist()
    for r in rows:
        r["syscall"] = str(r["syscall"])
    out = got["out"]

    def args(r: dict) -> list[int | None]:
        return [r[f"a{i}"] for i in range(6)]

    opens = [r for r in rows if r["syscall"] == "openat" and r["path"] == str(target)]
    assert len(opens) == 1, opens
    assert args(opens[0]) == [_signed(a & (2**64 - 1)) for a in out["openat"][0]]
    assert opens[0]["res"] == out["openat"][1] and opens[0]["fd"] == out["openat"][1]
    closes = [r for r in rows if r["syscall"] == "close" and r["a1"] == 0x10]
    assert len(closes) == 1 and args(closes[0]) == out["close"][0]
    assert closes[0]["res"] == 0 and closes[0]["fd"] == out["openat"][1]
    execs = [r for r in rows if r["syscall"] == "execve"
             and r["path"] in (f"{target}-missing", "/bin/true")]
    assert out["execve_fail"][1] == -1  # libc: -1 and errno ENOENT
    assert [r["res"] for r in execs] == [-2, 0], execs
    assert args(execs[0]) == out["execve_fail"][0]
    assert args(execs[1]) == out["execve"][0]  # from entry: the registers were reset
    assert execs[1]["argv"] == ["/bin/true", "fcap-args"] and execs[1]["exe"] == os.path.realpath("/bin/true")
    # the child side of the fork that started the child: no arguments
    children = [r for r in rows if r["syscall"] in ("clone", "clone3", "fork", "vfork") and r["res"] == 0]
    assert len(children) == 1 and args(children[0]) == [None] * 6
