"""A scripted terminal session, recorded: the shell-session tests and sample use it.

:func:`record_scenario` starts the recorder (:func:`fcap.capture.recorder.record`
in a thread), then types, like a person would, into

* bash on a host pty: a builtin's redirection, a pipeline, quotes with a
  backslash continuation, a ``/dev/tcp`` connection to a local listener, a
  password read with echo off, a file removal;
* busybox sh in a runc container with a Kubernetes-shaped cgroup path and CRI
  annotations, entered like ``kubectl exec -it pod -- /bin/sh`` (``runc exec
  --tty`` with a console socket): a write below /etc, a read of /etc/shadow;

and stops. Root only (recorder and runc).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROMPT = "PROMPT> "
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PS1": PROMPT, "TERM": "dumb", "HOME": "/tmp"}


@dataclass
class ScenarioResult:
    """What was typed where, for checking the capture."""

    files: list[Path]
    workdir: Path
    host_pid: int = 0
    host_lines: list[str] = field(default_factory=list)
    container_pid: int = 0
    container_id: str = ""
    container_lines: list[str] = field(default_factory=list)
    pod_name: str = "web-0"
    namespace: str = "prod"
    secret: str = ""
    port: int = 0


def _listener() -> tuple[socket.socket, int]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def _host_session(res: ScenarioResult) -> None:
    from fcap.capture.shell_tty import PtySession

    d = res.workdir
    res.host_lines = [
        f'echo "hello world" > {d}/example.txt',
        f"cat {d}/example.txt | tr a-z A-Z | wc -c",
        "printf '%s\\n' \"it's 'quoted'\" \\",
        f"  >> {d}/notes.txt",
        f"exec 3<>/dev/tcp/127.0.0.1/{res.port}; exec 3>&-",
        "stty -echo; read -r pw; stty echo",
        f"mv {d}/notes.txt {d}/notes.old; rm {d}/example.txt",
    ]
    sh = PtySession(["/bin/bash", "--norc", "--noprofile", "-i"], env=ENV, cwd=str(d))
    res.host_pid = sh.pid or 0
    try:
        sh.expect(PROMPT)
        for line in res.host_lines:
            sh.type(line + "\n")
            if line.startswith("stty -echo"):
                time.sleep(0.3)
                sh.type(res.secret + "\n")
            sh.expect("> " if line.endswith("\\") else PROMPT)
        sh.type("exit\n")
        if sh.proc is not None:
            sh.proc.wait(10)  # bash reads `exit` before the terminal hangs up
    finally:
        sh.close()


def _container_session(res: ScenarioResult) -> None:
    from fcap.capture.runc import RuncContainer
    from fcap.capture.shell_tty import PtySession

    res.container_lines = [
        "id -u",
        "echo 'eve:x:0:0::/root:/bin/sh' >> /etc/passwd",
        "cat /etc/shadow | head -n 1",
    ]
    with RuncContainer(pod_name=res.pod_name, namespace=res.namespace,
                       container_name="shell") as c:  # fmt: skip
        c.start(["sleep", "60"])
        res.container_id = c.id
        time.sleep(2.5)  # let the recorder's container rescan (>= 1 s apart) see it
        tty = c.exec_tty(["/bin/sh"], env=["TERM=dumb", f"PS1={PROMPT}"])
        res.container_pid = tty.pid
        sh = PtySession([], master_fd=tty.master_fd)
        try:
            sh.expect(PROMPT)
            for line in res.container_lines:
                sh.type(line + "\n", per_key=0.004)
                sh.expect(PROMPT)
            sh.type("exit\n")
            tty.wait(5)
            time.sleep(0.5)
        finally:
            sh.close()


def new_result(secret: str = "") -> tuple[ScenarioResult, socket.socket]:
    """A fresh work dir, a listening TCP socket on 127.0.0.1 and a random secret."""
    srv, port = _listener()
    res = ScenarioResult(files=[], workdir=Path(tempfile.mkdtemp(prefix="fcap-shell-")),
                         port=port, secret=secret or f"S3cret-{os.urandom(8).hex()}")  # fmt: skip
    return res, srv


def type_sessions(res: ScenarioResult, *, container: bool = True) -> None:
    """Type the host session, then (``container``) the container session."""
    _host_session(res)
    if container:
        _container_session(res)


def record_scenario(output: Path, *, container: bool = True, secret: str = "") -> ScenarioResult:
    """Record the scripted sessions into ``output``; return what was typed."""
    from fcap.capture.recorder import RecordOptions, record
    from fcap.capture.syscalls import DEFAULT_SYSCALLS

    res, srv = new_result(secret)
    opts = RecordOptions(output=output, syscalls=DEFAULT_SYSCALLS, quiet=True,
                         command=("fcap", "record", "-o", str(output)))  # fmt: skip
    ready, stop = threading.Event(), threading.Event()
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = record(opts, handle_signals=False, ready=ready, stop=stop)
        except BaseException as err:  # surfaced below
            out["error"] = err
            ready.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(120)
    try:
        if "error" not in out:
            time.sleep(0.3)
            type_sessions(res, container=container)
            time.sleep(0.5)
    finally:
        stop.set()
        t.join(60)
        srv.close()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    res.files = list(out["result"].files)  # type: ignore[attr-defined]
    return res
