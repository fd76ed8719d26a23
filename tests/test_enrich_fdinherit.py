"""Descriptor inheritance through forks and exec (lazy lookups up the fork tree)."""

from __future__ import annotations

from fields_fixture import bash_world, build, fields


def test_grandchild_sees_what_its_parent_had_at_its_fork() -> None:
    r = bash_world()
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("clone", 400, res=0, ppid=300, comm="bash")
    r.ev("close", 300, res=0, ppid=100, a0=7, fd=7)  # after the grandchild's fork
    r.ev("write", 400, res=1, ppid=300, a0=7, fd=7)
    r.ev("write", 300, res=-9, ppid=100, a0=7, fd=7)
    r.ev("read", 400, res=1, ppid=300, a0=0, fd=0)
    r.ev("write", 400, res=1, ppid=300, a0=9, fd=9)  # never open anywhere
    con = build(r)
    assert fields(con, ["proc.pid", "evt.type", "fd.name", "fd.type"],
                  "e.evt_type IN ('write', 'read')") == [
        (400, "write", "10.0.0.5:40000->1.2.3.4:443", "ipv4"),
        (300, "write", None, None),
        (400, "read", "/dev/pts/1", "file"),
        (400, "write", None, None),
    ]


def test_close_on_exec_dies_at_the_exec_of_the_holder_or_an_ancestor() -> None:
    r = bash_world()
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("read", 300, res=1, ppid=100, a0=255, fd=255)  # before the exec: still open
    r.ev("dup2", 300, res=5, ppid=100, a0=255, a1=5, fd=5)  # the copy has no O_CLOEXEC
    r.ev("execve", 300, res=0, ppid=100, comm="cat", exe="/bin/cat", argv=["cat"])
    r.ev("read", 300, res=1, ppid=100, a0=255, fd=255)
    r.ev("read", 300, res=1, ppid=100, a0=5, fd=5)
    r.ev("clone", 400, res=0, ppid=300, comm="cat")
    r.ev("read", 400, res=1, ppid=300, a0=255, fd=255)
    r.ev("read", 400, res=1, ppid=300, a0=0, fd=0)
    r.ev("read", 100, res=1, ppid=1, a0=255, fd=255)  # the parent never exec'ed
    con = build(r)
    assert fields(con, ["proc.pid", "fd.num", "fd.name"], "e.evt_type = 'read'") == [
        (300, 255, "/dev/pts/1"),
        (300, 255, None),
        (300, 5, "/dev/pts/1"),
        (400, 255, None),
        (400, 0, "/dev/pts/1"),
        (100, 255, "/dev/pts/1"),
    ]


def test_exec_before_the_fork_is_not_inherited() -> None:
    r = bash_world()
    r.ev("execve", 100, res=0, ppid=1, comm="zsh", exe="/bin/zsh", argv=["zsh"])
    r.ev("clone", 300, res=0, ppid=100, comm="zsh")
    r.ev("read", 300, res=1, ppid=100, a0=255, fd=255)
    r.ev("read", 300, res=1, ppid=100, a0=0, fd=0)
    con = build(r)
    assert fields(con, ["fd.num", "fd.name"], "e.evt_type = 'read'") == [
        (255, None), (0, "/dev/pts/1"),
    ]
