"""Pipes and socket pairs as descriptors, as libsinsp has them.

libsinsp (parsers.cpp ``parse_pipe_exit`` / ``parse_socketpair_exit``) adds both
descriptors of a successful pipe/pipe2/socketpair to the thread's fd table: a
pipe end is ``SCAP_FD_FIFO`` (fd.type ``pipe``, typechar ``p``) with an empty
name, the pipe's inode and pipe2's flags (O_CLOEXEC ends die at exec); a
socketpair end is ``SCAP_FD_UNIX_SOCK`` (``unix``/``u``, empty name, no open
flags: never close-on-exec). The capture row keeps the first descriptor in
``fd`` and ``flags_aux`` = the second | the first's inode << 32. A child gets
its parent's descriptors at the first of the two clone exits.
"""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
from fields_fixture import Raw, bash_world, build, fields, open_events

CLOEXEC = 0o2000000
FORK_FLAGS = 0x1200011  # glibc fork(): CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
FD_COLS = ["fd.num", "fd.type", "fd.typechar", "fd.name", "fd.ino", "fd.sockfamily"]


def _pipe(r: Raw, pid: int, syscall: str, fd1: int, fd2: int, ino: int, flags: int = 0,
          **kw) -> None:
    r.ev(syscall, pid, res=0, a0=0x7FFC0000, a1=flags, fd=fd1, flags_aux=(ino << 32) | fd2,
         comm="bash", **kw)


# --- the two records of one row, hand-built rows --------------------------------------------


def test_both_ends_of_a_pipe_are_pipe_descriptors_with_its_inode() -> None:
    r = bash_world()
    _pipe(r, 100, "pipe2", 3, 4, 777001, ppid=1)
    r.ev("write", 100, res=1, ppid=1, a0=4, fd=4, comm="bash")
    r.ev("read", 100, res=1, ppid=1, a0=3, fd=3, comm="bash")
    r.ev("close", 100, res=0, ppid=1, a0=4, fd=4, comm="bash")
    r.ev("write", 100, res=-9, ppid=1, a0=4, fd=4, comm="bash")  # closed
    r.ev("read", 100, res=0, ppid=1, a0=3, fd=3, comm="bash")  # the other end is still open
    con = build(r)
    pipe = ("pipe", "p", "", 777001, None)
    assert fields(con, FD_COLS, "e.evt_type <> 'procexit'") == [
        (3, *pipe),  # the pipe row itself (libsinsp: the second end's record, the same)
        (4, *pipe), (3, *pipe), (4, *pipe),
        (4, None, None, None, None, None),
        (3, *pipe),
    ]
    assert fields(con, ["evt.arg[fd1]", "evt.arg[fd2]", "evt.arg[ino]", "evt.arg[flags]",
                        "evt.rawarg[fd2]", "evt.args"], "e.evt_type = 'pipe2'") == [
        ("3", "4", "777001", "O_NONE", 4, "res=0 fd1=3 fd2=4 ino=777001 flags=O_NONE")]


def test_socketpair_ends_are_unix_sockets_without_a_name() -> None:
    r = bash_world()
    r.ev("socketpair", 100, res=0, ppid=1, a0=1, a1=1 | CLOEXEC, a2=0, a3=0x7FFC0000, fd=5,
         flags_aux=(888 << 32) | 6, comm="bash")
    r.ev("sendto", 100, res=1, ppid=1, a0=6, fd=6, sock_family=1, comm="bash")
    r.ev("dup", 100, res=9, ppid=1, a0=5, fd=9, comm="bash")
    r.ev("recvfrom", 100, res=1, ppid=1, a0=9, fd=9, sock_family=1, comm="bash")
    con = build(r)
    unix = ("unix", "u", "", None, "unix")
    assert fields(con, FD_COLS, "e.evt_type <> 'procexit'") == [
        (5, *unix), (6, *unix), (9, *unix), (9, *unix)]
    assert fields(con, ["evt.arg[fd1]", "evt.arg[fd2]", "evt.arg[domain]", "evt.arg[source]"],
                  "e.evt_type = 'socketpair'") == [("5", "6", "AF_UNIX", None)]


def test_failed_or_undecoded_pipe_rows_make_no_record() -> None:
    r = bash_world()
    r.ev("pipe", 100, res=-24, ppid=1, a0=0x7FFC0000, comm="bash")  # EMFILE: nothing recorded
    r.ev("pipe", 100, res=0, ppid=1, a0=0x7FFC0000, comm="bash")  # an older capture: no fds
    r.ev("read", 100, res=1, ppid=1, a0=3, fd=3, comm="bash")
    con = build(r)
    assert fields(con, ["evt.arg[fd1]", "evt.arg[fd2]", "evt.arg[ino]"],
                  "e.evt_type = 'pipe'") == [(None, None, None)] * 2
    assert fields(con, ["fd.type"], "e.evt_type = 'read'") == [(None,)]


def test_pipeline_children_inherit_the_ends_their_parent_closed_after_forking() -> None:
    """``sh -c 'a | b'``: the parent closes both ends right after its forks, before the
    children's first rows; each child still has them (the caller's fork exit came first)."""
    r = bash_world()
    _pipe(r, 100, "pipe", 3, 4, 4242, ppid=1)
    r.ev("clone", 100, res=300, ppid=1, a0=FORK_FLAGS, comm="bash")
    r.ev("close", 100, res=0, ppid=1, a0=4, fd=4, comm="bash")
    r.ev("clone", 100, res=400, ppid=1, a0=FORK_FLAGS, comm="bash")
    r.ev("close", 100, res=0, ppid=1, a0=3, fd=3, comm="bash")
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("dup2", 300, res=1, ppid=100, a0=4, a1=1, fd=1, comm="bash")
    r.ev("close", 300, res=0, ppid=100, a0=3, fd=3, comm="bash")
    r.ev("write", 300, res=3, ppid=100, a0=1, fd=1, comm="bash")
    r.ev("clone", 400, res=0, ppid=100, comm="bash")
    r.ev("close", 400, res=-9, ppid=100, a0=4, fd=4, comm="bash")  # closed before this fork
    r.ev("dup2", 400, res=0, ppid=100, a0=3, a1=0, fd=0, comm="bash")
    r.ev("execve", 400, res=0, ppid=100, comm="cat", exe="/bin/cat", argv=["cat"])
    r.ev("read", 400, res=3, ppid=100, a0=0, fd=0, comm="cat")
    r.ev("read", 400, res=3, ppid=100, a0=3, fd=3, comm="cat")  # still open after exec
    con = build(r)
    got = fields(con, ["proc.pid", "evt.type", "fd.num", "fd.type", "fd.ino"],
                 "e.proc_pid IN (300, 400) AND e.evt_type NOT IN ('clone', 'execve')")
    assert got == [
        (300, "dup2", 1, "pipe", 4242), (300, "close", 3, "pipe", 4242),
        (300, "write", 1, "pipe", 4242),
        (400, "close", 4, None, None), (400, "dup2", 0, "pipe", 4242),
        (400, "read", 0, "pipe", 4242), (400, "read", 3, "pipe", 4242),
    ]


def test_child_first_then_caller_and_a_container_caller() -> None:
    """When the child's clone exit comes first it is the fork time; a caller in another pid
    namespace (tid != vtid) or a vfork never gives the fork time (libsinsp)."""
    r = bash_world()
    _pipe(r, 100, "pipe2", 3, 4, 9, ppid=1)
    r.ev("clone", 300, res=0, ppid=100, comm="bash")  # the child runs first
    r.ev("close", 100, res=0, ppid=1, a0=3, fd=3, comm="bash")
    r.ev("clone", 100, res=300, ppid=1, a0=FORK_FLAGS, comm="bash")
    r.ev("vfork", 100, res=500, ppid=1, comm="bash")
    r.ev("close", 100, res=0, ppid=1, a0=4, fd=4, comm="bash")
    r.ev("clone", 500, res=0, ppid=100, comm="bash")
    r.ev("read", 300, res=1, ppid=100, a0=3, fd=3, comm="bash")
    r.ev("read", 500, res=1, ppid=100, a0=4, fd=4, comm="bash")
    con = build(r)
    assert fields(con, ["proc.pid", "fd.type"], "e.evt_type = 'read'") == [
        (300, "pipe"), (500, None)]
    r = bash_world()
    _pipe(r, 100, "pipe2", 3, 4, 9, ppid=1)
    r.ev("clone", 100, res=300, ppid=1, a0=FORK_FLAGS, vtid=7, comm="bash")  # in a pid ns
    r.ev("close", 100, res=0, ppid=1, a0=3, fd=3, comm="bash")
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("read", 300, res=1, ppid=100, a0=3, fd=3, comm="bash")
    assert fields(build(r), ["fd.type"], "e.evt_type = 'read'") == [(None,)]


def test_pipe2_close_on_exec_and_socketpair_ends_survive_exec() -> None:
    r = bash_world()
    _pipe(r, 100, "pipe2", 3, 4, 5, flags=CLOEXEC | 0o4000, ppid=1)
    r.ev("socketpair", 100, res=0, ppid=1, a0=1, a1=1 | CLOEXEC, a3=0x7FFC0000, fd=6,
         flags_aux=7, comm="bash")
    r.ev("execve", 100, res=0, ppid=1, comm="cat", exe="/bin/cat", argv=["cat"])
    for fd in (3, 4, 6, 7):
        r.ev("read", 100, res=-9, ppid=1, a0=fd, fd=fd, comm="cat")
    con = build(r)
    assert fields(con, ["evt.arg[flags]"], "e.evt_type = 'pipe2'") == [("O_NONBLOCK|O_CLOEXEC",)]
    # libsinsp: pipe2's O_CLOEXEC ends die at exec; socketpair sets no open flags, so its
    # ends stay in the table even with SOCK_CLOEXEC
    assert fields(con, ["fd.num", "fd.type"], "e.evt_type = 'read'") == [
        (3, None), (4, None), (6, "unix"), (7, "unix")]


# --- live recording ---------------------------------------------------------------------------

_CHILD = r"""
import os, socket, sys
fill = []
while not fill or fill[-1] < 39:  # the ends get fds >= 40: no reuse by a new image's start-up
    fill.append(os.open("/dev/null", os.O_RDONLY))
r, w = os.pipe2(os.O_CLOEXEC)
a, b = socket.socketpair()
print(r, w, os.fstat(r).st_ino, a.fileno(), b.fileno(), flush=True)
pid = os.fork()
if pid == 0:
    os.write(w, b"x")
    b.send(b"y")
    os._exit(0)
os.waitpid(pid, 0)
os.read(r, 1)
a.recv(1)
pid = os.fork()
if pid == 0:
    code = f"import os\nfor fd in ({r}, {a.fileno()}):\n    try: os.read(fd, 1)\n    except OSError: pass"
    os.execv(sys.executable, [sys.executable, "-c", code])
os.waitpid(pid, 0)
os.close(r); os.close(w); a.close(); b.close()
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> dict:
    from live_support import record_while

    out = tmp_path_factory.mktemp("pipes") / "live.parquet"
    res: dict = {}

    def work() -> None:
        sh = subprocess.run(["/bin/sh", "-c", "echo hi | (readlink /proc/self/fd/0; cat)"],
                            capture_output=True, text=True, check=True)
        res["sh"] = sh.stdout.split()
        py = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                            check=True)
        res["py"] = [int(x) for x in py.stdout.split()]

    record_while(out, work, syscalls="default,+read,+write")
    res["capture"] = out
    return res


@pytest.mark.live
def test_live_shell_pipeline(live) -> None:
    """``echo hi | (readlink /proc/self/fd/0; cat)``: the writer's stdout and cat's stdin are
    the pipe sh made (its inode as the reader saw it), through dup2 and fork inheritance."""
    link, text = live["sh"]
    assert text == "hi" and link.startswith("pipe:[")
    ino = int(link[6:-1])
    con = open_events(live["capture"])
    rows = fields(con, ["proc.pid", "evt.arg[fd1]", "evt.arg[fd2]", "evt.arg[ino]", "fd.type"],
                  f"e.evt_type IN ('pipe', 'pipe2') AND e.proc_name = 'sh' AND "
                  f"(e.flags_aux >> 32) = {ino}")
    assert len(rows) == 1
    sh_pid, fd1, fd2, arg_ino, typ = rows[0]
    assert (arg_ino, typ) == (str(ino), "pipe") and int(fd2) > int(fd1) >= 0
    kids = [p for (p,) in con.execute(
        "SELECT DISTINCT proc_pid FROM events WHERE proc_ppid = ?", [sh_pid]).fetchall()]
    pipe = ("pipe", "p", "", ino)
    cols = ["proc.name", "evt.type", "fd.num", "fd.type", "fd.typechar", "fd.name", "fd.ino"]
    where = f"e.proc_pid IN ({', '.join(map(str, kids))})"
    got = fields(con, cols, where + " AND e.evt_type IN ('dup2', 'write', 'read') "
                 "AND e.fd IN (0, 1) AND e.res >= 0")
    # the writer: dup2(fd2, 1) then write(1); the reader: dup2(fd1, 0), cat reads fd 0
    assert ("sh", "dup2", 1, *pipe) in got and ("sh", "write", 1, *pipe) in got
    assert ("sh", "dup2", 0, *pipe) in got
    reads = [g for g in got if g[:2] == ("cat", "read")]
    assert reads and all(g[2:] == (0, *pipe) for g in reads)
    # the children close the ends they inherited (the parent had already closed them),
    # before their exec
    closes = fields(con, ["fd.num", "fd.type", "fd.ino"],
                    where + f" AND e.evt_type = 'close' AND e.fd IN ({fd1}, {fd2}) "
                    "AND e.res = 0 AND e.proc_name = 'sh'")
    assert closes and all(c == (c[0], "pipe", ino) for c in closes)


@pytest.mark.live
def test_live_pipe2_cloexec_socketpair_fork_and_exec(live) -> None:
    r, w, ino, a, b = live["py"]
    con = open_events(live["capture"])
    (pid,) = con.execute(
        "SELECT pid FROM events WHERE evt_type = 'pipe2' AND fd = ? AND (flags_aux >> 32) = ?",
        [r, ino]).fetchone()
    assert fields(con, ["evt.arg[fd1]", "evt.arg[fd2]", "evt.arg[ino]", "evt.arg[flags]",
                        "fd.type", "fd.ino"], f"e.evt_type = 'pipe2' AND e.proc_pid = {pid}") \
        == [(str(r), str(w), str(ino), "O_CLOEXEC", "pipe", ino)]
    assert fields(con, ["evt.arg[fd1]", "evt.arg[fd2]", "evt.arg[domain]", "fd.type",
                        "fd.sockfamily", "fd.name"],
                  f"e.evt_type = 'socketpair' AND e.proc_pid = {pid}") == [
        (str(a), str(b), "AF_UNIX", "unix", "unix", "")]
    kids = [p for (p,) in con.execute(
        "SELECT DISTINCT proc_pid FROM events WHERE proc_ppid = ?", [pid]).fetchall()]
    assert len(kids) == 2
    cols = ["proc.pid", "evt.type", "fd.num", "fd.type", "fd.typechar", "fd.name", "fd.ino",
            "fd.sockfamily"]
    got = fields(con, cols, f"e.proc_pid IN ({pid}, {kids[0]}, {kids[1]}) AND "
                 f"e.evt_type IN ('read', 'write', 'sendto', 'recvfrom') "
                 f"AND e.fd IN ({r}, {w}, {a}, {b})")
    pipe = ("pipe", "p", "", ino, None)
    unix = ("unix", "u", "", None, "unix")
    forked, execed = sorted(kids)
    assert got == [
        (forked, "write", w, *pipe),  # the forked child: inherited
        (forked, "sendto", b, *unix),
        (pid, "read", r, *pipe),
        (pid, "recvfrom", a, *unix),
        # after exec: the O_CLOEXEC pipe end is gone; libsinsp keeps the socketpair end
        (execed, "read", r, None, None, None, None, None),
        (execed, "read", a, *unix),
    ]
    res = dict(con.execute(f"SELECT fd, res FROM events WHERE proc_pid = {execed} AND "
                           f"evt_type = 'read' AND fd IN ({r}, {a})").fetchall())
    assert res == {r: -9, a: -9}  # the kernel did close both at exec


@pytest.mark.live
def test_live_partial_and_own_record_state_match_the_full_one(live) -> None:
    """The pre-filter's partial state (second records re-numbered from ranks to scan
    positions) and its own-record columns agree with the full state on the live capture."""
    import test_prefilter as tp
    from fcap.analyze import enrich
    from fcap.analyze.fields.columns import needs
    from fcap.capture.reader import open_capture

    cols = sorted(c for c, k in needs().items() if "fd" in k)
    for step in (1, 3):
        full = tp._fd_view_rows(live["capture"], cols, step, partial=False)
        assert tp._fd_view_rows(live["capture"], cols, step, partial=True) == full
        assert any(row[cols.index("fd_type") + 1] == "pipe" for row in full)
    con = duckdb.connect()
    open_capture(live["capture"]).attach(con)
    enrich.prepare(con)
    own = sorted(c for c, k in needs().items() if k == {"fd"})
    enrich.build_view(con, "pf_full", own, with_rn=True)
    rel = enrich.row_relation(con, own)
    diff = " OR ".join(f"a.{c} IS DISTINCT FROM b.{c}" for c in own)
    assert con.execute(f"SELECT count(*) FROM {rel} a JOIN pf_full b USING (_rn) "
                       f"WHERE a.fc_fdk AND ({diff})").fetchall()[0][0] == 0
    assert con.execute(f"SELECT count(*) FROM {rel} a WHERE a.evt_type IN ('pipe2', 'pipe', "
                       "'socketpair') AND a.res = 0 AND a.fc_fdk AND a.fd_type IS NOT NULL"
                       ).fetchall()[0][0] >= 3

