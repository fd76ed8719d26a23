"""Field values the engine sees on real recordings (root + bcc; runc for the container).

One recording (module fixture) runs a scripted workload; each test checks the
enriched ``events`` view for the rows that workload caused. Expectations come
from the workload itself (paths, pids, ports and names it chose) and Linux /
libsinsp semantics, never from the enrichment's own output.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from live_support import record_while

pytestmark = pytest.mark.live

FORK_SOCKET = r"""
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
pid = os.fork()
if pid == 0:
    os.write(s.fileno(), b"from-child")
    os._exit(0)
os.waitpid(pid, 0)
print(pid, s.getsockname()[1], s.fileno(), flush=True)
"""

DUP2 = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.dup2(fd, 57)
os.write(57, b"hello")
os.close(57)
os.close(fd)
print(os.getpid(), fd, flush=True)
"""

SETUID = r"""
import os, sys
open(sys.argv[1]).close()
os.setgid(65534); os.setuid(65534)
try:
    open(sys.argv[2]).close()
except OSError:
    pass
print(os.getpid(), flush=True)
"""

WAITER = r"""
import sys
sys.stdin.readline()  # entered before the recording: its exit row has no entry, not recorded
sys.stdin.readline()
open(sys.argv[1]).close()
"""


@dataclass
class Work:
    tag: str
    dir: Path
    out: dict = field(default_factory=dict)


def _query(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    import duckdb
    from fcap.analyze import enrich
    from fcap.capture.reader import open_capture

    tmp = tmp_path_factory.mktemp("fields-live")
    w = Work(tag=secrets.token_hex(4), dir=tmp)
    (tmp / "readable").write_text("x")
    os.chmod(tmp, 0o755)
    os.chmod(tmp / "readable", 0o644)
    # started before the recording: blocks on stdin until the workload writes a line
    waiter_file = tmp / f"waiter-{w.tag}"
    waiter_file.write_text("w")
    # (through bash: the recording process itself is not part of its own capture)
    waiter = subprocess.Popen(["bash", "-c", f'"{sys.executable}" -c "$0" "$1"; true', WAITER,
                               str(waiter_file)], stdin=subprocess.PIPE)
    w.out["waiter"] = (waiter.pid, str(waiter_file))  # the bash; the waiter is its child
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    w.out["port"] = srv.getsockname()[1]

    def work() -> None:
        subprocess.run(["bash", "-c", 'sh -c "cat /etc/shadow; true" >/dev/null; true'],
                       check=True)
        target = tmp / f"dup2-{w.tag}"
        p = subprocess.run([sys.executable, "-c", DUP2, str(target)], check=True,
                           capture_output=True, text=True)
        pid, fd = (int(x) for x in p.stdout.split())
        w.out["dup2"] = (pid, fd, str(target))
        p = subprocess.Popen([sys.executable, "-c", FORK_SOCKET, str(w.out["port"])],
                             stdout=subprocess.PIPE, text=True)
        conn, _ = srv.accept()
        conn.recv(64)
        out, _ = p.communicate(20)
        conn.close()
        child, lport, sfd = (int(x) for x in out.split())
        w.out["fork"] = (p.pid, child, lport, sfd)
        p = subprocess.run([sys.executable, "-c", SETUID, str(tmp / "readable"),
                            str(tmp / "readable")], check=True, capture_output=True,
                           text=True)
        w.out["setuid"] = int(p.stdout)
        waiter.stdin.write(b"go\n")
        waiter.stdin.flush()
        time.sleep(0.3)
        waiter.stdin.write(b"go\n")
        waiter.stdin.flush()
        waiter.wait(10)

    try:
        res = record_while(tmp / "cap.parquet", work, syscalls="+read,+write")
    finally:
        srv.close()
        if waiter.poll() is None:
            waiter.kill()
    con = duckdb.connect()
    open_capture(res.files).attach(con)
    enrich.build(con)
    return con, w


def test_bash_sh_cat_chain(live) -> None:
    con, _ = live
    rows = _query(con, """
        SELECT proc_name, proc_pname, proc_anames[3], proc_pcmdline, proc_cmdline, proc_exepath,
               fd_name, user_name
        FROM events WHERE evt_type IN ('open', 'openat') AND path = '/etc/shadow'
          AND proc_name = 'cat' AND proc_pname = 'sh'""")
    assert len(rows) == 1, rows
    name, pname, aname2, pcmdline, cmdline, exepath, fd_name, user = rows[0]
    assert (name, pname, aname2) == ("cat", "sh", "bash")
    assert pcmdline == "sh -c cat /etc/shadow; true"
    assert cmdline == "cat /etc/shadow"
    assert exepath == os.path.realpath(shutil.which("cat"))
    assert fd_name == "/etc/shadow" and user == "root"


def test_fd_open_dup2_write_close(live) -> None:
    con, w = live
    pid, fd, target = w.out["dup2"]
    rows = _query(con, f"""
        SELECT evt_type, fd_num, fd_name, fd_type, fd_typechar, fd_directory, fd_filename
        FROM events WHERE pid = {pid}
          AND evt_type IN ('openat', 'dup2', 'dup3', 'write', 'close') AND fd_num IN ({fd}, 57)
          AND evt_num >= (SELECT evt_num FROM events WHERE pid = {pid} AND path = '{target}')
        ORDER BY evt_num""")
    d, f = os.path.dirname(target), os.path.basename(target)
    dup = "dup3" if any(r[0] == "dup3" for r in rows) else "dup2"  # CPython uses dup3 when it can
    assert rows == [
        ("openat", fd, target, "file", "f", d, f),
        (dup, 57, target, "file", "f", d, f),
        ("write", 57, target, "file", "f", d, f),
        ("close", 57, target, "file", "f", d, f),
        ("close", fd, target, "file", "f", d, f),
    ]


def test_fork_inherits_a_socket(live) -> None:
    con, w = live
    parent, child, lport, sfd = w.out["fork"]
    rows = _query(con, f"""
        SELECT proc_pid, proc_ppid, fd_num, fd_type, fd_typechar, fd_name, fd_sip, fd_sport,
               fd_cport, fd_l4proto, proc_name, proc_pname
        FROM events WHERE pid = {child} AND evt_type = 'write' AND fd_num = {sfd}""")
    port = w.out["port"]
    assert rows == [(child, parent, sfd, "ipv4", "4", f"127.0.0.1:{lport}->127.0.0.1:{port}",
                     "127.0.0.1", port, lport, "tcp", rows[0][10], rows[0][10])]
    assert rows[0][10].startswith("python")


def test_process_started_before_recording(live) -> None:
    con, w = live
    bash, path = w.out["waiter"]
    rows = _query(con, f"""
        SELECT pid, proc_name, proc_exepath, proc_cmdline, proc_ppid, proc_pname, fd_name,
               proc_duration > 0, proc_pid_ts < (SELECT min(ts) FROM raw_events)
        FROM events WHERE evt_type IN ('open', 'openat') AND path = '{path}'""")
    assert len(rows) == 1, rows
    pid, name, exepath, cmdline, ppid, pname, fd_name, positive, before = rows[0]
    assert name.startswith("python") and exepath == os.path.realpath(sys.executable)
    assert cmdline.endswith(str(path)) and ppid == bash and pname == "bash"
    assert fd_name == path and positive and before
    # its stdin pipe comes from the start snapshot
    reads = _query(con, f"SELECT fd_type FROM events WHERE pid = {pid} AND evt_type = 'read' "
                        "AND fd_num = 0")
    assert reads and reads[0][0] == "pipe"


def test_setuid_changes_user_fields(live) -> None:
    con, w = live
    pid = w.out["setuid"]
    nobody = pwd.getpwuid(65534).pw_name
    rows = _query(con, f"""
        SELECT evt_type, user_uid, user_name, group_gid FROM events
        WHERE pid = {pid} AND evt_type IN ('openat', 'setuid') AND (evt_type = 'setuid'
              OR path LIKE '%/readable') ORDER BY evt_num""")
    assert rows == [("openat", 0, "root", 0), ("setuid", 65534, nobody, 65534),
                    ("openat", 65534, nobody, 65534)]


@pytest.mark.container
def test_runc_container_kubernetes_fields(tmp_path) -> None:
    import duckdb
    from fcap.analyze import enrich
    from fcap.capture.reader import open_capture
    from fcap.capture.runc import RuncContainer

    tag = secrets.token_hex(4)
    with RuncContainer(pod_name=f"pod-{tag}", namespace="fcap-fields", container_name="box") as c:
        c.start(["sleep", "60"])
        done: list[object] = []

        def work() -> None:
            done.append(c.exec(["sh", "-c", "cat /etc/shadow >/dev/null; true"]))

        res = record_while(tmp_path / "c.parquet", work)
    assert done and done[0].returncode == 0
    con = duckdb.connect()
    open_capture(res.files).attach(con)
    enrich.build(con)
    rows = con.execute(f"""
        SELECT container_id, container_full_id, container_name, container_image,
               container_image_repository, container_image_tag, k8s_pod_name, k8s_ns_name,
               k8s_pod_uid, proc_name, proc_exe, proc_exepath, proc_pname, fd_name
        FROM events WHERE evt_type IN ('open', 'openat') AND path = '/etc/shadow'
          AND comm = 'cat' AND raw_container_id = '{c.id}'""").fetchall()
    # busybox sh runs applets by exec'ing /proc/self/exe: the kernel names the image "exe"
    # (the applet renames itself later with prctl, which libsinsp does not follow either)
    assert rows == [(c.id[:12], c.id, "box", c.image, c.image.rsplit(":", 1)[0],
                     c.image.rsplit(":", 1)[1], f"pod-{tag}", "fcap-fields", c.pod_uid,
                     "exe", "cat", "/bin/busybox", "sh", "/etc/shadow")]
