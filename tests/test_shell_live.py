"""Live tests of the shell probe: real shells on real terminals, real probes.

bash on a host pty, dash and busybox ash with canonical and raw-mode input, a
password typed with echo off, and busybox sh inside a runc container entered
as ``kubectl exec -it`` would (``runc exec --tty`` with a console socket).
``fcap.capture.runc`` (helper "capio") had not landed when these were written,
so :func:`_runc_container` below is the minimum needed here.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def _recv_fd(sock: socket.socket) -> int:
    conn, _ = sock.accept()
    with conn:
        fds = array.array("i")
        _msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return fds[0]


@contextmanager
def _runc_container(tmp: Path) -> Iterator[tuple[str, str]]:
    """A busybox container with a Kubernetes-shaped cgroup and CRI annotations.

    Yields (container id, cgroups path)."""
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    pod_uid = str(uuid.uuid4())
    bundle = tmp / "bundle"
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        (rootfs / d).mkdir(exist_ok=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "cat", "echo", "ls", "stty"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sleep", "60"]
    spec["root"]["readonly"] = False
    cg = f"/kubepods/besteffort/pod{pod_uid}/{cid}"
    spec["linux"]["cgroupsPath"] = cg
    spec["annotations"] = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "shell",
        "io.kubernetes.cri.sandbox-name": "web-0",
        "io.kubernetes.cri.sandbox-namespace": "prod",
        "io.kubernetes.cri.sandbox-uid": pod_uid,
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:1.36",
    }
    (bundle / "config.json").write_text(json.dumps(spec))
    subprocess.run(
        ["runc", "run", "-d", "--bundle", str(bundle), cid],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield cid, cg
    finally:
        subprocess.run(["runc", "delete", "--force", cid], check=False)


@pytest.mark.container
def test_busybox_in_container_exec_tty(probe: object, tmp_path: Path) -> None:
    with _runc_container(tmp_path) as (cid, cg):
        sock_path = tmp_path / "console.sock"
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(sock_path))
        srv.listen(1)
        proc = subprocess.Popen(
            ["runc", "exec", "-d", "--tty", "--console-socket", str(sock_path),
             "--pid-file", str(tmp_path / "sh.pid"),
             "--env", f"PS1={PROMPT}", "--env", "TERM=dumb", cid, "/bin/sh"],
        )  # fmt: skip  (-d: like containerd-shim, runc hands the pty master over and exits)
        srv.settimeout(20)
        master = _recv_fd(srv)
        srv.close()
        sh = PtySession([], master_fd=master, proc=proc)
        lines = ["echo in-container > /tmp/x.txt", "cat /tmp/x.txt | wc -c", "ls /bin"]
        try:
            sh.expect(PROMPT)
            proc.wait(20)
            shell_pid = int((tmp_path / "sh.pid").read_text())
            for line in lines:
                sh.type(line + "\n", per_key=0.005)
                sh.expect(PROMPT)
            table = _drain(probe)
        finally:
            sh.type("exit\n")
            sh.close()
    rows = [r for r in table.to_pylist() if r["text"] in lines]
    assert [r["text"] for r in rows] == lines
    # the rows carry the container's cgroup (v2 id = inode of its unified cgroup dir)
    unified = Path("/sys/fs/cgroup/unified") if Path("/sys/fs/cgroup/unified").is_dir() else Path(
        "/sys/fs/cgroup"
    )
    cg_dir = unified / cg.lstrip("/")
    assert {r["cgroup_id"] for r in rows} == {os.stat(cg_dir).st_ino}
    assert {r["pid"] for r in rows} == {shell_pid} and rows[0]["comm"] == "sh"
    assert rows[0]["tty"] >> 8 in range(136, 144)
