"""Process lineage in the enriched events view: exec, fork, reparenting, threads, snapshot.

Each test hand-builds raw rows with the semantics of fcap.schema (exit-only
rows, child-side clone rows with res 0, execve exit rows carrying the new
image) and asserts the values libsinsp would give for the same sequence.
"""

from __future__ import annotations

from fields_fixture import Raw, build, fields


def _world() -> Raw:
    r = Raw()
    r.add("processes", pid=1, ppid=0, comm="systemd", exe="/sbin/init",
          exepath="/usr/lib/systemd/systemd", argv=["/sbin/init", "splash"], start_ts=10,
          cwd="/", sid=1, pgid=1)
    r.add("processes", pid=100, ppid=1, comm="bash", exe="-bash", exepath="/usr/bin/bash",
          argv=["-bash"], start_ts=1000, cwd="/root", sid=100, pgid=100)
    return r


def test_exec_chain_parent_and_ancestors() -> None:
    r = _world()
    r.ev("clone", 200, res=0, ppid=100, comm="bash", sid=100)
    r.ev("execve", 200, res=0, ppid=100, comm="bash", exe="/usr/bin/bash",
         argv=["bash", "-c", "sh -c 'cat /etc/shadow'"], cwd="/root", sid=100)
    r.ev("clone", 201, res=0, ppid=200, comm="bash", sid=100)
    r.ev("execve", 201, res=0, ppid=200, comm="sh", exe="/usr/bin/sh",
         argv=["sh", "-c", "cat /etc/shadow"], cwd="/root", sid=100)
    r.ev("clone", 202, res=0, ppid=201, comm="sh", sid=100)
    r.ev("execve", 202, res=0, ppid=201, comm="cat", exe="/usr/bin/cat",
         argv=["cat", "/etc/shadow"], cwd="/root", sid=100)
    r.ev("openat", 202, res=3, ppid=201, comm="cat", a0=-100, a2=0, path="/etc/shadow", fd=3,
         sid=100)
    con = build(r)
    got = fields(con, ["proc.name", "proc.exe", "proc.exepath", "proc.args", "proc.cmdline",
                       "proc.pname", "proc.pcmdline", "proc.pexe", "proc.aname[2]",
                       "proc.aname[3]", "proc.aname[4]", "proc.aname[5]", "proc.apid[2]",
                       "proc.ppid", "proc.sname", "proc.aexepath[2]", "proc.cwd"],
                 "e.evt_type = 'openat'")
    assert got == [(
        "cat", "cat", "/usr/bin/cat", "/etc/shadow", "cat /etc/shadow",
        "sh", "sh -c cat /etc/shadow", "sh", "bash", "bash", "systemd", None, 200, 201,
        "bash", "/usr/bin/bash", "/root",
    )]
    # without an index: any ancestor, parent first (the process itself excluded)
    assert fields(con, ["proc.aname"], "e.evt_type = 'openat'") == [
        (["sh", "bash", "bash", "systemd"],)
    ]


def test_exec_changes_image_from_its_exit_on() -> None:
    r = _world()
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("openat", 300, res=3, ppid=100, comm="bash", a2=0, path="/a", fd=3)
    r.ev("execve", 300, res=0, ppid=100, comm="python3", exe="/usr/bin/python3.11",
         argv=["python3", "x.py"], cwd="/srv")
    r.ev("execve", 300, res=-2, ppid=100, comm="python3", exe="/nope", argv=["nope"])
    r.ev("openat", 300, res=4, ppid=100, comm="python3", a2=0, path="/b", fd=4)
    con = build(r)
    got = fields(con, ["evt.type", "proc.name", "proc.exe", "proc.exepath", "proc.cmdline",
                       "proc.cwd"], "e.pid = 300")
    assert got == [
        ("clone", "bash", "-bash", "/usr/bin/bash", "bash", "/root"),
        ("openat", "bash", "-bash", "/usr/bin/bash", "bash", "/root"),
        ("execve", "python3", "python3", "/usr/bin/python3.11", "python3 x.py", "/srv"),
        # a failed execve changes nothing
        ("execve", "python3", "python3", "/usr/bin/python3.11", "python3 x.py", "/srv"),
        ("openat", "python3", "python3", "/usr/bin/python3.11", "python3 x.py", "/srv"),
    ]


def test_fork_without_exec_inherits_image_and_cwd_and_chdir() -> None:
    r = _world()
    r.ev("chdir", 100, res=0, ppid=1, comm="bash", path="/tmp", cwd="/tmp")
    r.ev("clone", 400, res=0, ppid=100, comm="bash")
    r.ev("clone", 401, res=0, ppid=400, comm="bash")  # subshell of a subshell
    r.ev("write", 401, res=1, ppid=400, comm="bash", fd=1, a0=1)
    r.ev("chdir", 401, res=0, ppid=400, comm="bash", path="/etc", cwd="/etc")
    r.ev("write", 401, res=1, ppid=400, comm="bash", fd=1, a0=1)
    r.ev("write", 400, res=1, ppid=100, comm="bash", fd=1, a0=1)
    con = build(r)
    got = fields(con, ["proc.pid", "proc.name", "proc.exepath", "proc.cmdline", "proc.cwd",
                       "proc.pname", "proc.aname[2]"], "e.evt_type = 'write'")
    assert got == [
        (401, "bash", "/usr/bin/bash", "bash", "/tmp", "bash", "bash"),
        (401, "bash", "/usr/bin/bash", "bash", "/etc", "bash", "bash"),
        (400, "bash", "/usr/bin/bash", "bash", "/tmp", "bash", "systemd"),
    ]


def test_reparenting_follows_recorded_ppid() -> None:
    r = _world()
    r.ev("clone", 500, res=0, ppid=100, comm="bash")
    r.ev("execve", 500, res=0, ppid=100, comm="daemon", exe="/usr/sbin/daemon",
         argv=["daemon"])
    r.ev("clone", 501, res=0, ppid=500, comm="daemon")
    r.ev("write", 501, res=1, ppid=500, comm="daemon", fd=1, a0=1)
    r.ev("procexit", 500, res=0, ppid=100, comm="daemon")
    # the orphan's next event carries its new real parent (init)
    r.ev("write", 501, res=1, ppid=1, comm="daemon", fd=1, a0=1)
    con = build(r)
    got = fields(con, ["proc.ppid", "proc.pname", "proc.aname[2]", "proc.aname[3]"],
                 "e.pid = 501 AND e.evt_type = 'write'")
    assert got == [(500, "daemon", "bash", "systemd"), (1, "systemd", None, None)]


def test_parent_exec_while_child_lives_changes_pname() -> None:
    r = _world()
    r.ev("clone", 600, res=0, ppid=100, comm="bash")
    r.ev("clone", 601, res=0, ppid=600, comm="bash")
    r.ev("write", 601, res=1, ppid=600, comm="bash", fd=1, a0=1)
    r.ev("execve", 600, res=0, ppid=100, comm="sleep", exe="/usr/bin/sleep",
         argv=["sleep", "9"])
    r.ev("write", 601, res=1, ppid=600, comm="bash", fd=1, a0=1)
    con = build(r)
    got = fields(con, ["proc.pname", "proc.pcmdline", "proc.pexepath"],
                 "e.pid = 601 AND e.evt_type = 'write'")
    assert got == [("bash", "bash", "/usr/bin/bash"), ("sleep", "sleep 9", "/usr/bin/sleep")]


def test_long_chain_aname_7_and_any_ancestor() -> None:
    r = _world()
    parent = 100
    for i in range(9):
        pid = 1000 + i
        r.ev("clone", pid, res=0, ppid=parent, comm="bash")
        r.ev("execve", pid, res=0, ppid=parent, comm=f"p{i}", exe=f"/bin/p{i}", argv=[f"p{i}"])
        parent = pid
    r.ev("openat", parent, res=3, ppid=parent - 1, comm="p8", a2=0, path="/x", fd=3)
    con = build(r)
    got = fields(con, ["proc.name", "proc.aname[1]", "proc.aname[7]", "proc.aname[8]",
                       "proc.aname[9]", "proc.aname[10]", "proc.apid[7]", "proc.aexe[7]"],
                 "e.evt_type = 'openat'")
    assert got == [("p8", "p7", "p1", "p0", "bash", "systemd", 1001, "p1")]
    any_ = fields(con, ["proc.aname"], "e.evt_type = 'openat'")[0][0]
    assert any_ == ["p7", "p6", "p5", "p4", "p3", "p2", "p1", "p0", "bash", "systemd"]


def test_process_started_before_recording() -> None:
    r = _world()
    t = r.ev("read", 100, res=5, ppid=1, comm="bash", fd=0, a0=0, tty=34816, loginuid=1000)
    con = build(r)
    got = fields(con, ["proc.name", "proc.exe", "proc.exepath", "proc.cmdline", "proc.pname",
                       "proc.cwd", "proc.duration", "proc.pid.ts", "proc.tty", "proc.sid",
                       "proc.is_sid_leader", "proc.is_vpgid_leader", "proc.sname"])
    assert got == [("bash", "-bash", "/usr/bin/bash", "bash", "systemd", "/root", t - 1000,
                    1000, 34816, 100, True, True, "bash")]


def test_threads_share_the_process_image() -> None:
    r = _world()
    r.ev("clone", 700, res=0, ppid=100, comm="bash")
    r.ev("execve", 700, res=0, ppid=100, comm="java", exe="/usr/bin/java", argv=["java", "-jar"])
    r.ev("clone", 700, res=701, ppid=100, comm="java", a0=0x10000 | 0x100)  # CLONE_THREAD
    r.ev("clone", 700, tid=701, res=0, ppid=100, comm="java")
    r.ev("openat", 700, tid=701, res=5, ppid=100, comm="GC thread", a2=0, path="/x", fd=5)
    con = build(r)
    got = fields(con, ["proc.pid", "thread.tid", "thread.ismain", "proc.name", "proc.cmdline",
                       "proc.pname", "fd.name"], "e.evt_type = 'openat'")
    assert got == [(700, 701, False, "java", "java -jar", "bash", "/x")]
    assert con.execute("SELECT count(*) FROM fc_pinst WHERE pid = 700").fetchone()[0] == 1


def test_pid_reuse_starts_a_new_process() -> None:
    r = _world()
    r.ev("clone", 800, res=0, ppid=100, comm="bash")
    r.ev("execve", 800, res=0, ppid=100, comm="old", exe="/bin/old", argv=["old"])
    r.ev("procexit", 800, res=0, ppid=100, comm="old")
    r.ev("clone", 800, res=0, ppid=1, comm="systemd")
    r.ev("write", 800, res=1, ppid=1, comm="systemd", fd=1, a0=1)
    con = build(r)
    got = fields(con, ["proc.name", "proc.exepath", "proc.pname"], "e.evt_type = 'write'")
    assert got == [("systemd", "/usr/lib/systemd/systemd", "systemd")]


def test_unknown_process_falls_back_to_comm() -> None:
    r = _world()
    r.ev("openat", 900, res=3, ppid=4242, comm="mystery", a2=0, path="/y", fd=3)
    con = build(r)
    got = fields(con, ["proc.name", "proc.exe", "proc.cmdline", "proc.pname", "proc.ppid"])
    assert got == [("mystery", None, "mystery", None, 4242)]


def test_loginshellid_and_vpgid() -> None:
    r = _world()
    r.ev("clone", 950, res=0, ppid=100, comm="bash", pgid=950, sid=100, vpid=950)
    r.ev("execve", 950, res=0, ppid=100, comm="zsh", exe="/bin/zsh", argv=["zsh"], pgid=950,
         sid=100)
    r.ev("clone", 951, res=0, ppid=950, comm="zsh", pgid=950, sid=100)
    r.ev("execve", 951, res=0, ppid=950, comm="ls", exe="/bin/ls", argv=["ls"], pgid=950,
         sid=100)
    con = build(r)
    got = fields(con, ["proc.loginshellid", "proc.vpgid", "proc.is_vpgid_leader",
                       "proc.vpgid.name", "proc.sname"], "e.pid = 951 AND e.evt_type = 'execve'")
    # the most distant ancestor whose name ends in "sh" is pid 100 (bash)
    assert got == [(100, 950, False, "zsh", "bash")]


def test_child_of_a_process_first_seen_at_its_exec_inherits_the_new_image() -> None:
    """pid 500 is unknown until its execve (no snapshot row, no fork row): its start, exec
    and parent rows share that timestamp. A child it forks later runs the exec'd image."""
    r = _world()
    r.ev("execve", 500, res=0, ppid=100, comm="python3", exe="/usr/bin/python3",
         argv=["python3", "job.py"], cwd="/srv")
    r.ev("clone", 501, res=0, ppid=500, comm="python3")
    r.ev("openat", 501, res=3, ppid=500, comm="python3", a2=0, path="/srv/data", fd=3)
    con = build(r)
    assert fields(con, ["proc.name", "proc.exepath", "proc.cmdline", "proc.cwd", "proc.pname"],
                  "e.evt_type = 'openat'") == [
        ("python3", "/usr/bin/python3", "python3 job.py", "/srv", "python3")]
