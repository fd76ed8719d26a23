"""Descriptor state in the enriched events view: open, dup2, fork, close, snapshot, sockets."""

from __future__ import annotations

from fields_fixture import bash_world, build, fields

O_WRONLY, O_CREAT, O_TRUNC, O_CLOEXEC, O_DIRECTORY = 1, 0o100, 0o1000, 0o2000000, 0o200000
FD_COLS = ["evt.type", "fd.num", "fd.name", "fd.type", "fd.typechar", "fd.directory",
           "fd.filename"]


def test_open_dup2_write_close_reuse() -> None:
    r = bash_world()
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
    r = bash_world()
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
    r = bash_world()
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
    r = bash_world()
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
    r = bash_world()
    r.ev("openat", 100, res=-2, ppid=1, a0=-100, a2=0, path="/etc/nothere")  # the recorder keeps no fd for a failed open
    con = build(r)
    assert fields(con, ["fd.name", "fd.typechar", "fd.type", "evt.res", "evt.rawres",
                        "evt.failed", "fd.directory", "fd.num"]) == [
        ("/etc/nothere", "f", None, "ENOENT", -2, True, "/etc", None)
    ]


def test_sendto_with_destination_changes_name() -> None:
    r = bash_world()
    r.ev("socket", 100, res=4, ppid=1, a0=2, a1=2, a2=17, fd=4)
    r.ev("sendto", 100, res=10, ppid=1, fd=4, a0=4, sock_family=2, l4proto=17,
         laddr="10.0.0.5", lport=5353, raddr="8.8.8.8", rport=53)
    r.ev("sendto", 100, res=10, ppid=1, fd=4, a0=4)
    con = build(r)
    assert fields(con, ["evt.type", "fd.l4proto", "fd.connected", "fd.name_changed",
                        "fd.rip", "fd.rport"]) == [
        ("socket", "<NA>", False, False, None, None),  # role none: get_l4proto
        ("sendto", "udp", False, True, "8.8.8.8", 53),
        ("sendto", "udp", False, False, "8.8.8.8", 53),
    ]


def test_dup_chain_in_a_forked_shell() -> None:
    """bash's ``>& /dev/tcp/H/P 0>&1`` in a child whose 0-2 came from its parent.

    dup2(3,1), close(3), dup2(1,2), dup2(1,0): the later dups copy fd 1 as the
    first dup2 left it (the socket), not the terminal inherited at the fork.
    """
    r = bash_world()
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("socket", 300, res=3, ppid=100, a0=2, a1=1, a2=0, fd=3)
    r.ev("connect", 300, res=0, ppid=100, fd=3, a0=3, sock_family=2, l4proto=6,
         laddr="127.0.0.1", lport=45848, raddr="127.0.0.1", rport=4445)
    r.ev("dup2", 300, res=1, ppid=100, a0=3, a1=1, fd=1)
    r.ev("close", 300, res=0, ppid=100, a0=3, fd=3)
    r.ev("dup2", 300, res=2, ppid=100, a0=1, a1=2, fd=2)
    r.ev("dup2", 300, res=0, ppid=100, a0=1, a1=0, fd=0)
    r.ev("write", 300, res=1, ppid=100, a0=2, fd=2)
    r.ev("read", 300, res=1, ppid=100, a0=0, fd=0)
    r.ev("write", 100, res=1, ppid=1, a0=1, fd=1)  # the parent's fd 1 is still the terminal
    con = build(r)
    sock = "127.0.0.1:45848->127.0.0.1:4445"
    assert fields(con, ["evt.type", "fd.num", "fd.name", "fd.type"],
                  "e.evt_type IN ('dup2', 'write', 'read')") == [
        ("dup2", 1, sock, "ipv4"),
        ("dup2", 2, sock, "ipv4"),
        ("dup2", 0, sock, "ipv4"),
        ("write", 2, sock, "ipv4"),
        ("read", 0, sock, "ipv4"),
        ("write", 1, "/dev/pts/1", "file"),
    ]


def test_long_dup_chain_across_forks() -> None:
    """A 60-hop dup chain (each hop closes its source), forked twice on the way."""
    r = bash_world()
    r.ev("openat", 100, res=10, ppid=1, a0=-100, a2=O_WRONLY, path="/var/log/chain.log", fd=10)
    pid, ppid, fd = 100, 1, 10
    expect = []
    for hop in range(60):
        if hop in (20, 40):
            r.ev("clone", pid + 1000, res=0, ppid=pid, comm="bash")
            pid, ppid = pid + 1000, pid
        call = ("dup", "dup2", "dup3", "fcntl")[hop % 4]
        args = {"a1": fd + 1} if call in ("dup2", "dup3") else {}
        if call == "fcntl":
            args = {"a1": 0, "a2": fd + 1}
        if call == "dup3":
            args["a2"] = 0
        r.ev(call, pid, res=fd + 1, ppid=ppid, a0=fd, fd=fd + 1, **args)
        r.ev("close", pid, res=0, ppid=ppid, a0=fd, fd=fd)
        r.ev("write", pid, res=1, ppid=ppid, a0=fd, fd=fd)  # EBADF in reality: fd is closed
        fd += 1
        expect.append((pid, fd))
    r.ev("write", pid, res=1, ppid=ppid, a0=fd, fd=fd)
    r.ev("write", 100, res=1, ppid=1, a0=30, fd=30)  # the first process's fd 30 is still open
    con = build(r)
    got = fields(con, ["proc.pid", "evt.type", "fd.num", "fd.name"],
                 "e.evt_type IN ('dup', 'dup2', 'dup3', 'fcntl', 'write')")
    name = "/var/log/chain.log"
    want = []
    for pid_, fd_ in expect:
        want.append((pid_, got[len(want)][1], fd_, name))
        want.append((pid_, "write", fd_ - 1, None))
    want += [(pid, "write", fd, name), (100, "write", 30, name)]
    assert got == want
    assert [g[1] for g in got[:8:2]] == ["dup", "dup2", "dup3", "fcntl"]


def test_update_then_dup_then_update() -> None:
    """connect on a dup'ed socket, then dup2 of it: the copy has the connected state."""
    r = bash_world()
    r.ev("socket", 100, res=3, ppid=1, a0=2, a1=1, a2=0, fd=3)
    r.ev("dup", 100, res=4, ppid=1, a0=3, fd=4)
    r.ev("bind", 100, res=0, ppid=1, fd=4, a0=4, laddr="10.0.0.5", lport=40001)
    r.ev("connect", 100, res=0, ppid=1, fd=4, a0=4, sock_family=2, l4proto=6,
         laddr="10.0.0.5", lport=40001, raddr="1.2.3.4", rport=80)
    r.ev("dup2", 100, res=1, ppid=1, a0=4, a1=1, fd=1)
    r.ev("write", 100, res=1, ppid=1, a0=1, fd=1)
    r.ev("write", 100, res=1, ppid=1, a0=3, fd=3)
    con = build(r)
    assert fields(con, ["evt.type", "fd.num", "fd.name", "fd.connected", "fd.lport"],
                  "e.evt_type = 'write'") == [
        ("write", 1, "10.0.0.5:40001->1.2.3.4:80", True, 40001),
        ("write", 3, "", False, None),
    ]
