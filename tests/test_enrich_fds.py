"""Descriptor state in the enriched events view: open, dup2, fork, close, snapshot, sockets."""

from __future__ import annotations

from fields_fixture import Raw, build, fields

O_WRONLY, O_CREAT, O_TRUNC, O_CLOEXEC, O_DIRECTORY = 1, 0o100, 0o1000, 0o2000000, 0o200000
FD_COLS = ["evt.type", "fd.num", "fd.name", "fd.type", "fd.typechar", "fd.directory",
           "fd.filename"]


def _world() -> Raw:
    r = Raw()
    r.add("processes", pid=1, ppid=0, comm="systemd", exe="/sbin/init", argv=["/sbin/init"],
          exepath="/usr/lib/systemd/systemd", start_ts=10)
    r.add("processes", pid=100, ppid=1, comm="bash", exe="bash", exepath="/usr/bin/bash",
          argv=["bash"], start_ts=20)
    r.add("fds", pid=100, fd=0, type="file", name="/dev/pts/1", flags=2)
    r.add("fds", pid=100, fd=1, type="file", name="/dev/pts/1", flags=2)
    r.add("fds", pid=100, fd=255, type="file", name="/dev/pts/1", flags=2 | O_CLOEXEC)
    r.add("fds", pid=100, fd=7, type="ipv4", name="10.0.0.5:40000->1.2.3.4:443",
          sock_family=2, l4proto=6, laddr="10.0.0.5", lport=40000, raddr="1.2.3.4", rport=443)
    return r


def test_open_dup2_write_close_reuse() -> None:
    r = _world()
    r.ev("openat", 100, res=3, ppid=1, a0=-100, a2=O_WRONLY | O_CREAT | O_TRUNC,
         path="/var/log/app/out.log", path_raw="out.log", fd=3)
    r.ev("dup2", 100, res=1, ppid=1, a0=3, a1=1, fd=1)
    r.ev("close", 100, res=0, ppid=1, a0=3, fd=3)
    r.ev("write", 100, res=5, ppid=1, a0=1, fd=1)
    r.ev("write", 100, res=-9, ppid=1, a0=3, fd=3)  # EBADF: 3 is closed
    r.ev("openat", 100, res=3, ppid=1, a0=-100, a2=O_DIRECTORY, path="/etc", fd=3)
    r.ev("getdents64", 100, res=100, ppid=1, a0=3, fd=3)
    con = build(r)
    assert fields(con, FD_COLS) == [
        ("openat", 3, "/var/log/app/out.log", "file", "f", "/var/log/app", "out.log"),
        ("dup2", 1, "/var/log/app/out.log", "file", "f", "/var/log/app", "out.log"),
        # the close event still sees the descriptor it closes (libsinsp)
        ("close", 3, "/var/log/app/out.log", "file", "f", "/var/log/app", "out.log"),
        ("write", 1, "/var/log/app/out.log", "file", "f", "/var/log/app", "out.log"),
        ("write", 3, None, None, None, None, None),
        ("openat", 3, "/etc", "directory", "d", "/etc", None),
        ("getdents64", 3, "/etc", "directory", "d", "/etc", None),
    ]
    assert fields(con, ["fd.nameraw", "evt.arg.flags", "evt.is_open_write",
                        "evt.is_open_read", "evt.arg.name", "evt.rawarg.name"],
                  "e.evt_num = 1") == [
        ("out.log", "O_TRUNC|O_CREAT|O_WRONLY", True, False, "/var/log/app/out.log", "out.log")
    ]


def test_snapshot_fds_and_close() -> None:
    r = _world()
    r.ev("write", 100, res=3, ppid=1, a0=1, fd=1)
    r.ev("sendto", 100, res=10, ppid=1, a0=7, fd=7)
    r.ev("close", 100, res=0, ppid=1, a0=1, fd=1)
    r.ev("write", 100, res=-9, ppid=1, a0=1, fd=1)
    con = build(r)
    assert fields(con, ["fd.name", "fd.type", "fd.sip", "fd.sport", "fd.cip", "fd.l4proto",
                        "fd.sockfamily", "fd.typechar"]) == [
        ("/dev/pts/1", "file", None, None, None, "<NA>", None, "f"),
        ("10.0.0.5:40000->1.2.3.4:443", "ipv4", "1.2.3.4", 443, "10.0.0.5", "tcp", "ip", "4"),
        ("/dev/pts/1", "file", None, None, None, "<NA>", None, "f"),
        (None, None, None, None, None, None, None, None),
    ]


def test_fork_inherits_socket_and_table_at_fork_time() -> None:
    r = _world()
    r.ev("socket", 100, res=4, ppid=1, a0=2, a1=1, a2=0, fd=4)
    r.ev("connect", 100, res=0, ppid=1, fd=4, a0=4, sock_family=2, l4proto=6,
         laddr="10.0.0.5", lport=51000, raddr="93.184.216.34", rport=80)
    r.ev("openat", 100, res=5, ppid=1, a2=O_CLOEXEC, path="/tmp/a", fd=5)
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("close", 100, res=0, ppid=1, fd=4, a0=4)  # the parent's close does not affect the child
    r.ev("openat", 100, res=6, ppid=1, a2=0, path="/tmp/after", fd=6)  # opened after the fork
    r.ev("sendto", 300, res=10, ppid=100, fd=4, a0=4)
    r.ev("read", 300, res=1, ppid=100, fd=6, a0=6)
    r.ev("execve", 300, res=0, ppid=100, comm="nc", exe="/bin/nc", argv=["nc"])
    r.ev("read", 300, res=1, ppid=100, fd=5, a0=5)  # O_CLOEXEC: gone after exec
    r.ev("write", 300, res=1, ppid=100, fd=4, a0=4)  # no cloexec: still there
    con = build(r)
    got = fields(con, ["evt.type", "fd.name", "fd.sip", "fd.sport", "fd.cport",
                       "fd.connected", "fd.l4proto", "fd.name_changed"],
                 "e.pid = 300 OR e.evt_type = 'connect'")
    assert got == [
        ("connect", "10.0.0.5:51000->93.184.216.34:80", "93.184.216.34", 80, 51000, True,
         "tcp", True),
        ("clone", None, None, None, None, None, None, None),
        ("sendto", "10.0.0.5:51000->93.184.216.34:80", "93.184.216.34", 80, 51000, True,
         "tcp", False),
        ("read", None, None, None, None, None, None, None),
        ("execve", None, None, None, None, None, None, None),
        ("read", None, None, None, None, None, None, None),
        ("write", "10.0.0.5:51000->93.184.216.34:80", "93.184.216.34", 80, 51000, True,
         "tcp", False),
    ]


def test_accept_is_server_side_and_dup_chain() -> None:
    r = _world()
    r.ev("accept4", 100, res=8, ppid=1, a0=3, a3=0, fd=8, sock_family=10, l4proto=6,
         laddr="::1", lport=22, raddr="::1", rport=60000)
    r.ev("dup", 100, res=9, ppid=1, a0=8, fd=9)
    r.ev("dup3", 100, res=0, ppid=1, a0=9, a1=0, a2=0, fd=0)
    r.ev("read", 100, res=3, ppid=1, fd=0, a0=0)
    con = build(r)
    got = fields(con, ["fd.num", "fd.name", "fd.type", "fd.typechar", "fd.cip", "fd.sip",
                       "fd.sport", "fd.cport", "fd.lport", "fd.rport", "fd.is_server"])
    row = ("::1:60000->::1:22", "ipv6", "6", "::1", "::1", 22, 60000, 22, 60000, True)
    assert got == [(8, *row), (9, *row), (0, *row), (0, *row)]


def test_failed_open_has_the_path_but_no_descriptor() -> None:
    r = _world()
    r.ev("openat", 100, res=-2, ppid=1, a0=-100, a2=0, path="/etc/nothere")  # the recorder keeps no fd for a failed open
    con = build(r)
    assert fields(con, ["fd.name", "fd.typechar", "fd.type", "evt.res", "evt.rawres",
                        "evt.failed", "fd.directory", "fd.num"]) == [
        ("/etc/nothere", "f", None, "ENOENT", -2, True, "/etc", None)
    ]


def test_sendto_with_destination_changes_name() -> None:
    r = _world()
    r.ev("socket", 100, res=4, ppid=1, a0=2, a1=2, a2=17, fd=4)
    r.ev("sendto", 100, res=10, ppid=1, fd=4, a0=4, sock_family=2, l4proto=17,
         laddr="10.0.0.5", lport=5353, raddr="8.8.8.8", rport=53)
    r.ev("sendto", 100, res=10, ppid=1, fd=4, a0=4)
    con = build(r)
    assert fields(con, ["evt.type", "fd.l4proto", "fd.connected", "fd.name_changed",
                        "fd.rip", "fd.rport"]) == [
        ("socket", "udp", False, False, None, None),
        ("sendto", "udp", False, True, "8.8.8.8", 53),
        ("sendto", "udp", False, False, "8.8.8.8", 53),
    ]
