"""Live tests of the shell probe: real shells on real terminals, real probes.

bash on a host pty, dash and busybox ash with canonical and raw-mode input, a
password typed with echo off, and busybox sh inside a runc container entered
as ``kubectl exec -it`` would (``runc exec --tty`` with a console socket).
Containers come from :class:`fcap.capture.runc.RuncContainer`; the recorded
tests use :func:`fcap.capture.shell_scenario.record_scenario` (one recording
for the module).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fcap.capture.shell_tty import PtySession

pytestmark = pytest.mark.live

PROMPT = "PROMPT> "
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PS1": PROMPT, "TERM": "dumb", "HOME": "/tmp"}


@pytest.fixture(scope="module")
def probe() -> Iterator[object]:
    from fcap.capture.shellprobe import ShellProbe

    p = ShellProbe()
    p.start()
    p.drain()
    yield p
    p.stop()


def _drain(probe: object, wait: float = 0.4) -> pa.Table:
    time.sleep(wait)
    batches = [b for b in (probe.drain(), probe.drain()) if b is not None]
    from fcap.schema import EVENTS

    return pa.Table.from_batches(batches, schema=EVENTS)


def _rows(table: pa.Table, pid: int) -> list[dict]:
    return [r for r in table.to_pylist() if r["pid"] == pid]


def test_bash_lines_exact(probe: object, tmp_path: Path) -> None:
    out = tmp_path / f"fcap-shell-{uuid.uuid4().hex[:8]}.txt"
    lines = [
        f'echo "hello world" > {out}',
        "printf 'a\\nb\\n' | grep b | tr b c | wc -l",
        "echo 'it''s' \"a \\\"quoted\\\" word\" \\",
        "  continued",
    ]
    sh = PtySession(["/bin/bash", "--norc", "--noprofile", "-i"], env=ENV)
    try:
        sh.expect(PROMPT)
        for line in lines:
            sh.type(line + "\n")
            sh.expect(PROMPT if not line.endswith("\\") else "> ")
        table = _drain(probe)
    finally:
        sh.type("exit\n")
        sh.close()
    rows = _rows(table, sh.pid)
    assert [r["text"] for r in rows] == lines
    assert out.read_text() == "hello world\n"
    for r in rows:
        assert r["syscall"] == "shell_line"
        assert r["comm"] == "bash"
        assert r["sid"] == sh.pid  # setsid: the shell leads its session
        assert r["tty"] != 0 and r["tty"] >> 8 in range(136, 144)  # a pty slave
        assert r["uid"] == 0 and r["cgroup_id"] > 0
        assert r["flags_aux"] & 1  # from readline
    ts = [r["ts"] for r in rows]
    assert ts == sorted(ts) and abs(ts[0] - time.time_ns()) < 60 * 10**9


def test_loginuid_and_uid_of_a_logged_in_user(probe: object) -> None:
    """A login sets loginuid; su to another uid keeps it (here: set, then setpriv)."""
    script = ("echo 4242 > /proc/self/loginuid && "
              "exec setpriv --reuid=65534 --regid=65534 --clear-groups "
              "/bin/bash --norc --noprofile -i")  # fmt: skip
    sh = PtySession(["/bin/sh", "-c", script], env=ENV)
    try:
        sh.expect(PROMPT)
        sh.type("echo as nobody\n")
        sh.expect(PROMPT)
        table = _drain(probe)
    finally:
        sh.type("exit\n")
        sh.close()
    rows = _rows(table, sh.pid)
    assert [(r["text"], r["uid"], r["gid"], r["loginuid"]) for r in rows] == [
        ("echo as nobody", 65534, 65534, 4242)
    ]


def test_deleted_bash_binary_is_attached(probe: object, tmp_path: Path) -> None:
    """A bash whose binary was replaced on disk (a package upgrade) after it started."""
    exe = tmp_path / "bash"
    shutil.copy2("/bin/bash", exe)
    sh = PtySession([str(exe), "--norc", "--noprofile", "-i"], env=ENV)
    try:
        sh.expect(PROMPT)
        exe.unlink()
        probe._attach_pid(sh.pid)  # what the exec report or the start-up scan does
        sh.type("echo one\n")
        sh.expect(PROMPT)
        sh.type("echo two\n")
        sh.expect(PROMPT)
        table = _drain(probe)
    finally:
        sh.type("exit\n")
        sh.close()
    rows = [(r["text"], r["flags_aux"]) for r in _rows(table, sh.pid)]
    assert rows == [("echo one", 4), ("echo two", 1)]


def test_dash_and_busybox_lines(probe: object) -> None:
    sh = PtySession(["/bin/dash", "-i"], env=ENV)
    try:
        sh.expect(PROMPT)
        sh.type("echo dash line | cat\n")
        sh.expect(PROMPT)
        sh.type("exec /bin/busybox sh\n")
        sh.expect(PROMPT)
        # raw-mode line editing: typo, two backspaces, fix, then Ctrl-U kill of a line
        sh.type("echo tyxx\x7f\x7fpo fixed\n", per_key=0.01)
        sh.expect(PROMPT)
        sh.type("rm -rf /nothing\x15echo after kill\n", per_key=0.01)
        sh.expect(PROMPT)
        table = _drain(probe)
    finally:
        sh.type("exit\n")
        sh.close()
    rows = _rows(table, sh.pid)
    got = [(r["comm"], r["text"]) for r in rows]
    assert got == [
        ("dash", "echo dash line | cat"),
        ("dash", "exec /bin/busybox sh"),
        ("busybox", "echo typo fixed"),
        ("busybox", "echo after kill"),
    ]
    assert rows[0]["flags_aux"] == 2 and rows[2]["flags_aux"] & 4


def test_password_with_echo_off_is_withheld(probe: object, tmp_path: Path) -> None:
    secret = f"S3cret-{uuid.uuid4().hex}"
    sh = PtySession(["/bin/bash", "--norc", "--noprofile", "-i"], env=ENV)
    try:
        sh.expect(PROMPT)
        sh.type("stty -echo; read -r pw; stty echo; echo got ${#pw}\n")
        time.sleep(0.3)
        sh.type(secret + "\n")
        sh.expect("got 39")
        sh.expect(PROMPT)
        sh.type("exec /bin/dash -i\n")
        sh.expect(PROMPT)
        sh.type("stty -echo; read pw; stty echo; echo done\n")
        time.sleep(0.3)
        sh.type(secret + "\n")
        sh.expect("done")
        sh.expect(PROMPT)
        table = _drain(probe)
    finally:
        sh.type("exit\n")
        sh.close()
    rows = _rows(table, sh.pid)
    kinds = [(r["comm"], r["syscall"]) for r in rows]
    assert kinds == [
        ("bash", "shell_line"),
        ("bash", "shell_line_withheld"),
        ("bash", "shell_line"),
        ("dash", "shell_line"),
        ("dash", "shell_line_withheld"),
    ]
    assert all(r["text"] is None for r in rows if r["syscall"] == "shell_line_withheld")
    assert secret not in repr(table.to_pylist())
    # and not in the bytes of a file written from these rows
    import pyarrow.parquet as pq

    f = tmp_path / "rows.parquet"
    pq.write_table(table, f)
    assert secret.encode() not in f.read_bytes()


# ---- a container entered like `kubectl exec -it pod -- /bin/sh` ---------------


@pytest.mark.container
def test_busybox_in_container_exec_tty(probe: object) -> None:
    from fcap.capture.runc import RuncContainer

    lines = ["echo in-container > /tmp/x.txt", "cat /tmp/x.txt | wc -c", "ls /bin"]
    with RuncContainer(pod_name="web-0", namespace="prod", container_name="shell") as c:
        c.start(["sleep", "60"])
        tty = c.exec_tty(["/bin/sh"], env=["TERM=dumb", f"PS1={PROMPT}"])
        sh = PtySession([], master_fd=tty.master_fd)
        try:
            sh.expect(PROMPT)
            for line in lines:
                sh.type(line + "\n", per_key=0.005)
                sh.expect(PROMPT)
            table = _drain(probe)
        finally:
            sh.type("exit\n")
            sh.close()
        cg_dir = Path("/sys/fs/cgroup/unified") / c.cgroups_path.lstrip("/")
        cg_ino = os.stat(cg_dir).st_ino
    rows = [r for r in table.to_pylist() if r["text"] in lines]
    assert [r["text"] for r in rows] == lines
    # the rows carry the container's cgroup (v2 id = inode of its unified cgroup dir)
    assert {r["cgroup_id"] for r in rows} == {cg_ino}
    assert {r["pid"] for r in rows} == {tty.pid} and rows[0]["comm"] == "sh"
    assert rows[0]["tty"] >> 8 in range(136, 144)


def _copy_bash(rootfs: Path) -> None:
    """Install the host's bash and its libraries in a container rootfs (a new inode)."""
    (rootfs / "bin" / "bash").unlink(missing_ok=True)
    shutil.copy2("/bin/bash", rootfs / "bin" / "bash")
    ldd = subprocess.run(["ldd", "/bin/bash"], capture_output=True, text=True, check=True)
    for word in ldd.stdout.split():
        if word.startswith("/"):
            dest = rootfs / word.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(word), dest)


@pytest.mark.container
def test_container_bash_binary_attached_when_it_starts(probe: object) -> None:
    from fcap.capture.runc import RuncContainer

    with RuncContainer(pod_name="api-1", namespace="prod", container_name="bash") as c:
        c.start(["sleep", "60"])
        _copy_bash(c.rootfs)
        before = dict(probe.attached)
        tty = c.exec_tty(["/bin/bash", "--norc", "--noprofile", "-i"],
                         env=["TERM=dumb", f"PS1={PROMPT}"])  # fmt: skip
        sh = PtySession([], master_fd=tty.master_fd)
        try:
            sh.expect(PROMPT)
            early = _drain(probe, 0.2)  # the exec event -> attach to the container's bash
            new = {k: v for k, v in probe.attached.items() if k not in before}
            sh.type("echo 'from container bash' | cat\n")
            sh.expect(PROMPT)
            sh.type("ls / > /tmp/listing\n")
            sh.expect(PROMPT)
            table = _drain(probe)
        finally:
            sh.type("exit\n")
            sh.close()
    ino_host = os.stat("/bin/bash").st_ino
    assert len(new) == 1, probe.attached
    (_dev, ino), path = next(iter(new.items()))
    assert ino != ino_host and path.startswith(f"/proc/{tty.pid}/root/")
    assert not early.num_rows or "from container" not in str(early.to_pylist())
    rows = [r for r in table.to_pylist() if r["pid"] == tty.pid]
    # the first line was already being read by readline when the probe attached: it
    # comes from the keystroke path (4), once; the next one from readline (1)
    assert [(r["text"], r["flags_aux"]) for r in rows] == [
        ("echo 'from container bash' | cat", 4),
        ("ls / > /tmp/listing", 1),
    ]


_RL_SHELL = r"""
#include <stdio.h>
#include <stdlib.h>
#include <readline/readline.h>
int main(void) {
    char *line;
    while ((line = readline("PROMPT> ")) != NULL) {
        printf("got [%s]\n", line);
        fflush(stdout);
        free(line);
    }
    return 0;
}
"""


def test_shell_linked_with_libreadline_so(probe: object, tmp_path: Path) -> None:
    """A shell whose readline comes from libreadline.so (not statically linked)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc or not Path("/usr/include/readline/readline.h").exists():
        pytest.skip("needs a C compiler and libreadline-dev")
    src = tmp_path / "rl.c"
    src.write_text(_RL_SHELL)
    exe = tmp_path / "bash"  # comm "bash": a shell as far as the probe is concerned
    subprocess.run([cc, "-O1", "-o", str(exe), str(src), "-lreadline"], check=True)
    sh = PtySession([str(exe)], env=ENV)
    try:
        sh.expect(PROMPT)
        time.sleep(0.1)
        _drain(probe, 0.2)  # exec reported -> libreadline.so attached
        sh.type("first line\n")
        sh.expect(r"got \[first line\]")
        sh.expect(PROMPT)
        sh.type("second 'line'\n")
        sh.expect(PROMPT)
        table = _drain(probe)
    finally:
        sh.close()
    assert any("libreadline.so" in p for p in probe.attached.values()), probe.attached
    rows = [(r["text"], r["flags_aux"]) for r in table.to_pylist() if r["pid"] == sh.pid]
    assert rows == [("first line", 4), ("second 'line'", 1)]


# ---- recorded end to end: fcap record -> capture -> sessions ------------------


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> object:
    from fcap.capture.shell_scenario import record_scenario

    out = tmp_path_factory.mktemp("shell") / "session.parquet"
    res = record_scenario(out, container=True)
    yield res
    shutil.rmtree(res.workdir, ignore_errors=True)


def _sessions(scenario: object) -> tuple[object, list]:
    import duckdb
    from fcap.analyze.sessions import list_sessions
    from fcap.capture.reader import open_capture

    con = duckdb.connect()
    open_capture(scenario.files).attach(con)
    return con, list_sessions(con)


@pytest.mark.container
def test_recorded_host_session_transcript(scenario: object) -> None:
    from fcap.analyze.sessions import transcript

    con, sessions = _sessions(scenario)
    host = [s for s in sessions if s.shell_pid == scenario.host_pid]
    assert len(host) == 1
    s = host[0]
    assert s.where == "host" and s.user_name == "root" and s.tty_name.startswith("pts/")
    t = transcript(con, s.session_id)
    cmds = [c for c in t.commands if not c.withheld]
    assert cmds[-1].line == "exit"
    cmds = cmds[:-1]
    hl = scenario.host_lines
    # the backslash continuation joins two lines into one command
    expected = [hl[0], hl[1], hl[2] + "\n" + hl[3], hl[4], hl[5], hl[6]]
    assert [c.line for c in cmds] == expected
    d = str(scenario.workdir)
    by_line = {c.line: c for c in cmds}
    # the builtin's redirection: the shell's own openat right after the line
    redir = [e for e in by_line[hl[0]].effects if e.kind == "file"]
    assert [(e.syscall, e.target, e.pid) for e in redir] == [
        ("openat", f"{d}/example.txt", scenario.host_pid)
    ]
    assert redir[0].open_flags & 0o1101 == 0o1101  # O_WRONLY|O_CREAT|O_TRUNC
    procs = sorted(e.detail for e in by_line[hl[1]].effects if e.kind == "process")
    assert procs == sorted([f"cat {d}/example.txt", "tr a-z A-Z", "wc -c"])
    cont = by_line[hl[2] + "\n" + hl[3]]
    assert [e.target for e in cont.effects if e.kind == "file"] == [f"{d}/notes.txt"]
    net = [e for e in by_line[hl[4]].effects if e.kind == "network"]
    assert [(e.syscall, e.detail) for e in net] == [("connect", f"127.0.0.1:{scenario.port}")]
    pw = by_line[hl[5]]
    assert pw.inputs and pw.inputs[0][1] is None  # withheld input attached to `read`
    last = by_line[hl[6]]
    files = {(e.syscall, e.target) for e in last.effects if e.kind == "file"}
    assert ("renameat2", f"{d}/notes.txt") in files and ("unlinkat", f"{d}/example.txt") in files


@pytest.mark.container
def test_recorded_container_session(scenario: object) -> None:
    from fcap.analyze.sessions import transcript

    con, sessions = _sessions(scenario)
    cs = [s for s in sessions if s.shell_pid == scenario.container_pid]
    assert len(cs) == 1
    s = cs[0]
    assert s.container_id == scenario.container_id
    assert (s.k8s_pod_name, s.k8s_ns_name) == (scenario.pod_name, scenario.namespace)
    assert s.entered_via == "container exec" and s.shell == "sh"
    t = transcript(con, s.session_id)
    typed = [c.line for c in t.commands if c.line != "exit"]
    assert typed == scenario.container_lines
    passwd = [e for e in t.commands[1].effects if e.kind == "file"]
    assert [(e.target, e.pid) for e in passwd] == [("/etc/passwd", scenario.container_pid)]


@pytest.mark.container
def test_recorded_secret_absent_from_capture(scenario: object) -> None:
    con, sessions = _sessions(scenario)
    assert any(s.withheld_lines == 1 for s in sessions if s.shell_pid == scenario.host_pid)
    secret = scenario.secret.encode()
    for f in scenario.files:
        assert secret not in Path(f).read_bytes()
    hits = con.execute(
        "SELECT count(*) FROM raw_events WHERE CAST(text AS VARCHAR) LIKE ? "
        "OR CAST(data AS VARCHAR) LIKE ?",
        [f"%{scenario.secret}%", f"%{scenario.secret}%"],
    ).fetchall()
    assert hits == [(0,)]


@pytest.mark.container
def test_recorded_cli_lists_and_prints(scenario: object) -> None:
    import sys

    files = [str(f) for f in scenario.files]
    out = subprocess.run([sys.executable, "-m", "fcap", "sessions", *files],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "container exec" in out and "pod prod/web-0" in out
    js = subprocess.run([sys.executable, "-m", "fcap", "sessions", *files, "--json"],
                        capture_output=True, text=True, check=True).stdout  # fmt: skip
    sessions = json.loads(js)
    sid = next(s["session_id"] for s in sessions if s["shell_pid"] == scenario.host_pid)
    text = subprocess.run([sys.executable, "-m", "fcap", "sessions", *files, "--id", str(sid)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert scenario.host_lines[0] in text and "O_WRONLY|O_CREAT|O_TRUNC" in text
    assert "[input withheld: terminal echo was off]" in text
