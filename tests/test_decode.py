"""Decoding ring-buffer bytes built here with numpy in the layout of bpf/fcap_event.h."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pyarrow as pa
import pytest
from fcap.capture import decode as d
from fcap.capture.recorder import merge_records
from fcap.capture.ringbuf import BUSY_BIT, DISCARD_BIT, FCAP_MAGIC, find_records
from fcap.capture.syscall_table import SYSCALL_NR

from fcap.schema import EVENTS

NR = SYSCALL_NR


def rec(*, nr: int = 0, kind: int = d.K_SYSCALL, flags: int = 0, slots: dict | None = None,
        **fields) -> bytes:
    """One ring-buffer record: 8-byte header, struct fcap_event, slot data, padding."""
    ev = np.zeros(1, d.EVENT_DTYPE)
    ev["magic"] = FCAP_MAGIC
    ev["kind"] = kind
    ev["nr"] = nr
    ev["fd"] = -1
    ev["comm"] = b"proc"
    for k, v in fields.items():
        ev[k] = v
    data = b""
    for slot in range(d.NSLOTS):
        blob = (slots or {}).get(slot)
        if blob is not None:
            ev["slen"][0, slot] = len(blob)
            data += blob
    payload = ev.tobytes() + data
    hdr = struct.pack("<II", len(payload) | flags, 0)
    pad = (-len(payload)) % 8
    return hdr + payload + b"\xee" * pad


def buf(*records: bytes) -> np.ndarray:
    return np.frombuffer(b"".join(records), np.uint8).copy()


def decoded(*records: bytes, offset: int = 0) -> list[dict]:
    b = d.decode(find_records(buf(*records)), boot_offset_ns=offset)
    assert b.schema == EVENTS
    t = pa.Table.from_batches([b])
    t = t.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_dictionary(f.type) else f
                          for f in t.schema]))
    return t.to_pylist()


# --- record boundaries -------------------------------------------------------

def test_find_records_chain_discard_and_busy() -> None:
    a = rec(nr=3, slots={d.S_PATH: b"/etc/passwd\0"})
    b = rec(nr=3, flags=DISCARD_BIT)
    c = rec(nr=2, slots={d.S_ARGV: b"x\0" * 50})
    busy = rec(nr=3, flags=BUSY_BIT)
    after = rec(nr=3)
    r = find_records(buf(a, b, c, busy, after))
    assert list(r.starts) == [8, len(a) + len(b) + 8]  # the discarded one is skipped
    assert r.consumed == len(a) + len(b) + len(c)  # stops before the busy record
    assert list(r.lengths) == [d.EVENT_DTYPE.itemsize + 12, d.EVENT_DTYPE.itemsize + 100]


def test_find_records_magic_inside_payload_uses_slow_path() -> None:
    # a payload that contains the magic at an 8-aligned record-like position
    fake = struct.pack("<II", 300, 0) + struct.pack("<I", FCAP_MAGIC) + b"\0" * 20
    a = rec(nr=1, slots={d.S_DATA: b"\0" * 4 + fake})  # data starts 8-aligned + 4
    a2 = rec(nr=1, slots={d.S_DATA: b"\0" * 8 + fake})
    b = rec(nr=3)
    records = [a, a2, b, a2]
    r = find_records(buf(*records))
    expect = np.cumsum([0] + [len(x) for x in records[:-1]]) + 8
    assert list(r.starts) == list(expect)
    assert r.consumed == sum(len(x) for x in records)


def test_find_records_incomplete_tail_is_left_for_later() -> None:
    a, b = rec(nr=3), rec(nr=3, slots={d.S_PATH: b"/x\0"})
    raw = buf(a, b)[: len(a) + 20]
    r = find_records(raw)
    assert list(r.starts) == [8] and r.consumed == len(a)
    assert find_records(np.zeros(0, np.uint8)).consumed == 0


def test_merge_records_shifts_offsets() -> None:
    r1 = find_records(buf(rec(nr=3, pid=1)))
    r2 = find_records(buf(rec(nr=3, pid=2), rec(nr=3, pid=3)))
    rows = d.decode(merge_records([r1, r2]), boot_offset_ns=0).column("pid").to_pylist()
    assert rows == [1, 2, 3]


# --- columns -------------------------------------------------------------------

def test_header_columns_and_names() -> None:
    rows = decoded(
        rec(nr=NR["openat"], ts=1000, pid=10, tid=11, ppid=1, uid=1000, euid=0, loginuid=1000,
            tty=(136 << 8) | 3, sid=5, pgid=6, cgroup_id=77, mntns=4026531841, res=3, fd=3,
            args=[2**64 - 100, 0x1000, 0o100 | 1, 0o644, 0, 0], cpu=1, comm=b"cat\0junk",
            slots={d.S_PATH: b"/etc/shadow\0"}),
        rec(kind=d.K_PROCEXIT, ts=2000, pid=10, tid=11, res=9, flags=0, dflags=d.D_NOSTATE),
        rec(nr=NR["clone"], kind=d.K_CHILD, ts=3000, pid=12, tid=12, res=0),
        offset=5_000,
    )  # fmt: skip
    a, b, c = rows
    assert (a["ts"], a["pid"], a["tid"], a["ppid"], a["cpu"]) == (6000, 10, 11, 1, 1)
    assert (a["uid"], a["euid"], a["loginuid"], a["tty"], a["sid"], a["pgid"]) == (
        1000, 0, 1000, (136 << 8) | 3, 5, 6)
    assert (a["syscall"], a["res"], a["fd"], a["comm"], a["cgroup_id"]) == ("openat", 3, 3, "cat", 77)
    assert a["a0"] == -100 and a["a2"] == 0o101 and a["path"] == "/etc/shadow"
    assert a["path_raw"] is None and a["argv"] is None and a["raddr"] is None
    assert (b["syscall"], b["res"], b["a0"], b["fd"]) == ("procexit", 9, None, None)
    assert (c["syscall"], c["res"]) == ("clone", 0)


def test_relative_paths_are_joined_and_normalized() -> None:
    rows = decoded(
        rec(nr=NR["openat"], dflags=d.D_DIR1_CWD,
            slots={d.S_PATH: b"../etc/./passwd\0", d.S_DIR1: b"/home/user\0"}),
        rec(nr=NR["renameat2"], dflags=d.D_DIR2_CWD,
            slots={d.S_PATH: b"a\0", d.S_PATH2: b"b/c\0", d.S_DIR1: b"/srv\0", d.S_DIR2: b"/\0"}),
        rec(nr=NR["symlinkat"], slots={d.S_PATH: b"target\0", d.S_PATH2: b"/tmp/l\0"}),
        rec(nr=NR["chdir"], slots={d.S_PATH: b"/var\0", d.S_CWD: b"/var\0"}),
    )  # fmt: skip
    o, r, s, c = rows
    assert (o["path"], o["path_raw"], o["cwd"]) == ("/home/etc/passwd", "../etc/./passwd", "/home/user")
    assert (r["path"], r["path_raw"], r["path2"], r["path2_raw"]) == ("/srv/a", "a", "/b/c", "b/c")
    assert r["cwd"] == "/"  # DIR1 came from a dirfd, DIR2 is the cwd
    assert (s["path"], s["path_raw"], s["path2"]) == ("target", None, "/tmp/l")  # no base: kept
    assert (c["path"], c["cwd"]) == ("/var", "/var")


def test_exec_row() -> None:
    argv = b"./tool\0--flag\0two words\0"
    rows = decoded(
        rec(nr=NR["execve"], kind=d.K_EXEC, res=0,
            slots={d.S_PATH: b"./tool\0", d.S_CWD: b"/opt/x\0", d.S_EXE: b"/opt/x/tool\0",
                   d.S_ARGV: argv}),
        rec(nr=NR["execve"], kind=d.K_EXEC, res=0, dflags=d.D_TRUNC,
            slots={d.S_PATH: b"/bin/sh\0", d.S_ARGV: b"sh\0-c\0trunc"}),
        rec(nr=NR["execve"], res=-2, slots={d.S_PATH: b"/nope\0"}),
    )  # fmt: skip
    e, t, f = rows
    assert (e["path"], e["path_raw"], e["exe"], e["cwd"]) == ("/opt/x/tool", "./tool", "/opt/x/tool", "/opt/x")
    assert e["argv"] == ["./tool", "--flag", "two words"]
    assert t["argv"] == ["sh", "-c", "trunc"]  # truncated blob: the last element is kept
    assert f["argv"] is None and f["res"] == -2 and f["path"] == "/nope"


def _sin(port: int, ip: str) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(ip) + b"\0" * 8


def _sin6(port: int, ip: str) -> bytes:
    return (struct.pack("<H", socket.AF_INET6) + struct.pack(">H", port) + b"\0" * 4
            + socket.inet_pton(socket.AF_INET6, ip) + b"\0" * 4)


def test_socket_addresses() -> None:
    lo = np.zeros(16, np.uint8)
    lo[:4] = [10, 0, 0, 5]
    rows = decoded(
        rec(nr=NR["connect"], fd=4, res=0, sock_family=2, sock_type=1, l4proto=6, laddr=lo,
            lport=40000, slots={d.S_UADDR: _sin(443, "93.184.216.34")}),
        rec(nr=NR["bind"], fd=3, res=0, sock_family=10, sock_type=2, l4proto=17,
            slots={d.S_UADDR: _sin6(53, "::1")}),
        rec(nr=NR["accept4"], fd=5, res=5, sock_family=2, l4proto=6, laddr=lo, lport=22,
            raddr=np.array([192, 168, 1, 9] + [0] * 12, np.uint8), rport=51000),
        rec(nr=NR["connect"], fd=6, res=0, sock_family=1,
            slots={d.S_UADDR: struct.pack("<H", 1) + b"/run/x.sock\0\0\0"}),
        rec(nr=NR["listen"], fd=7, res=0, sock_family=1, slots={d.S_UNIX: b"/run/srv.sock\0"}),
        rec(nr=NR["socket"], res=8, fd=8, args=[2, 0x80801, 0, 0, 0, 0]),
        rec(nr=NR["sendto"], fd=9, res=5, sock_family=2, l4proto=17,
            slots={d.S_UADDR: _sin(53, "8.8.8.8"), d.S_DATA: b"\x00\x01hi\xff"}),
    )  # fmt: skip
    c, b, a, u, lis, s, snd = rows
    assert (c["raddr"], c["rport"], c["laddr"], c["lport"]) == ("93.184.216.34", 443, "10.0.0.5", 40000)
    assert (c["sock_family"], c["sock_type"], c["l4proto"]) == (2, 1, 6)
    assert (b["laddr"], b["lport"], b["sock_family"], b["l4proto"]) == ("::1", 53, 10, 17)
    assert (a["raddr"], a["rport"], a["laddr"], a["lport"]) == ("192.168.1.9", 51000, "10.0.0.5", 22)
    assert (u["unix_path"], u["raddr"], u["sock_family"]) == ("/run/x.sock", None, 1)
    assert lis["unix_path"] == "/run/srv.sock"
    assert (s["sock_family"], s["sock_type"], s["fd"]) == (2, 1, 8)
    assert (snd["raddr"], snd["rport"], snd["data"]) == ("8.8.8.8", 53, b"\x00\x01hi\xff")


def test_invalid_utf8_path_is_replaced_not_fatal() -> None:
    rows = decoded(rec(nr=NR["openat"], slots={d.S_PATH: b"/tmp/\xff\xfe\0"}))
    assert rows[0]["path"].startswith("/tmp/") and "\ufffd" in rows[0]["path"]


def test_empty_batch_has_the_schema() -> None:
    b = d.decode(find_records(np.zeros(0, np.uint8)), boot_offset_ns=0)
    assert b.num_rows == 0 and b.schema == EVENTS


@pytest.mark.parametrize("n", [1, 1000])
def test_many_records_round_trip(n: int) -> None:
    recs = [rec(nr=NR["openat"], pid=i, ts=i, slots={d.S_PATH: f"/p/{i}\0".encode()})
            for i in range(n)]  # fmt: skip
    rows = decoded(*recs)
    assert [r["pid"] for r in rows] == list(range(n))
    assert [r["path"] for r in rows] == [f"/p/{i}" for i in range(n)]


# --- record-time options (syscall set, filters) --------------------------------

def test_parse_syscalls_forms() -> None:
    from fcap.capture.syscalls import DEFAULT_SYSCALLS, parse_syscalls

    from fcap.errors import UsageError

    assert parse_syscalls(None) == DEFAULT_SYSCALLS
    assert parse_syscalls("openat,close") == ("openat", "close")
    s = parse_syscalls("-close,+read")
    assert "close" not in s and "read" in s and "openat" in s
    assert parse_syscalls("default,-close") == tuple(x for x in DEFAULT_SYSCALLS if x != "close")
    assert parse_syscalls("openat", snaplen=64) == ("openat", "read", "write")
    assert parse_syscalls("openat,-write", snaplen=64) == ("openat", "read")
    with pytest.raises(UsageError, match="did you mean openat"):
        parse_syscalls("opnat")
    with pytest.raises(UsageError, match="selects nothing"):
        parse_syscalls("openat,-openat")


def test_desc_table_marks_selected_syscalls() -> None:
    from fcap.capture import syscalls as sc

    t = sc.desc_table(("openat", "connect", "procexit"))
    sel = set(np.flatnonzero(t["flags"] & sc.SELECTED).tolist())
    assert sel == {NR["openat"], NR["connect"]}
    o = t[NR["openat"]]
    assert (o["path_arg"], o["dirfd_arg"], o["fd_arg"]) == (1, 0, sc.NOARG)
    assert o["flags"] & sc.RES_FD
    c = t[NR["connect"]]
    assert (c["fd_arg"], c["addr_arg"], c["addrlen_arg"]) == (0, 1, 2) and c["flags"] & sc.SOCK


def test_filters() -> None:
    from fcap.capture.filters import Filters, cgroup_ids_for, descendants

    from fcap.errors import UsageError

    pid = np.array([1, 10, 11, 12, 20, 21])
    ppid = np.array([0, 1, 10, 11, 1, 20])
    assert descendants([10], pid, ppid) == {10, 11, 12}
    assert descendants([20, 99], pid, ppid) == {20, 21, 99}
    paths = {1: "/", 2: "/kubepods/pod1/abc123", 3: "/kubepods/pod1/abc123/sub", 4: "/other"}
    conts = {1: None, 2: "abc123" + "0" * 58, 3: None, 4: "def456" + "0" * 58}
    assert cgroup_ids_for(["abc"], paths, conts) == {2, 3}
    assert cgroup_ids_for(["ABC1"], paths, conts) == {2, 3}
    assert cgroup_ids_for(["fff"], paths, conts) == set()
    Filters(pids=(1,), comms=("bash",), containers=("abc",)).check()
    for bad in (Filters(pids=(0,)), Filters(comms=("x" * 16,)), Filters(containers=("zz9",))):
        with pytest.raises(UsageError):
            bad.check()
    assert Filters(comms=("sh",)).as_meta()["comm"] == ["sh"]


def test_prerequisite_errors_name_cause_and_fix(monkeypatch) -> None:
    import sys
    from collections import namedtuple

    from fcap.capture import probe

    from fcap.errors import PrerequisiteError

    monkeypatch.setattr(probe.os, "geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError, match="needs root") as e:
        probe.check_prerequisites()
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    monkeypatch.setattr(probe.os, "geteuid", lambda: 0)
    monkeypatch.setitem(sys.modules, "bcc", None)  # import bcc -> ImportError
    with pytest.raises(PrerequisiteError, match="python3-bpfcc"):
        probe.check_prerequisites()
    monkeypatch.setitem(sys.modules, "bcc", type(sys)("bcc"))
    U = namedtuple("U", "sysname nodename release version machine")
    monkeypatch.setattr(probe.os, "uname", lambda: U("Linux", "h", "0.0-nonexistent", "", "x86_64"))
    with pytest.raises(PrerequisiteError, match=r"no kernel headers at /lib/modules/0\.0-nonexistent"):
        probe.check_prerequisites()


def test_records_from_several_rings_come_out_in_time_order() -> None:
    ring_a = find_records(buf(rec(nr=3, ts=10, pid=1), rec(nr=3, ts=30, pid=3)))
    ring_b = find_records(buf(rec(nr=3, ts=20, pid=2), rec(nr=3, ts=25, pid=25)))
    b = d.decode(merge_records([ring_a, ring_b]), boot_offset_ns=0)
    assert b.column("ts").to_pylist() == [10, 20, 25, 30]
    assert b.column("pid").to_pylist() == [1, 2, 25, 3]


def test_ring_source_generates_one_ring_per_group() -> None:
    from fcap.capture.probe import BPF_DIR, ring_source

    text = ring_source((BPF_DIR / "recorder.c").read_text(), 3)
    assert "BPF_RINGBUF_OUTPUT(events2, RB_PAGES);" in text and "events3" not in text
    assert "case 2: r = events2.ringbuf_output(" in text and "/*@" not in text
