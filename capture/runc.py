"""Run real busybox containers with runc (tests and samples; root only).

A :class:`RuncContainer` builds an OCI bundle in a temp dir (rootfs with
``/bin/busybox`` and its applet symlinks, ``/etc/passwd``, ``/etc/group``,
``/etc/shadow``, ``/tmp``), writes a ``config.json`` with a Kubernetes-shaped
``cgroupsPath`` (``/kubepods/besteffort/pod<uid>/<64-hex id>``, runc's
cgroupfs driver) and the CRI annotations containerd writes for a container
(``io.kubernetes.cri.container-type/-name``, ``sandbox-name/-namespace/-uid/-id``,
``image-name``), and runs it with runc's default state root ``/run/runc`` (so
:mod:`fcap.capture.containers` finds it)::

    with RuncContainer(pod_name="web-0", container_name="shell") as c:
        c.start(["sleep", "600"])                   # detached
        c.exec(["cat", "/etc/shadow"])              # CompletedProcess
        proc, master = c.exec_tty(["sh"])           # pty master fd (console socket)

:func:`runc_available` says why it cannot run here (None when it can). The bundle
itself (rootfs, config.json, cgroups path, CRI annotations) is built by
:mod:`fcap.capture.runc_bundle`; its names are re-exported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fcap.capture.runc_bundle import (
    BUSYBOX,
    DEFAULT_CAPS,
    GROUP,
    PASSWD,
    SHADOW,
    cri_annotations,
    kube_cgroups_path,
    make_config,
    make_rootfs,
)

from fcap.errors import PrerequisiteError

__all__ = [
    "BUSYBOX",
    "CGROUP_ROOT",
    "DEFAULT_CAPS",
    "GROUP",
    "PASSWD",
    "RUNC_ROOT",
    "SHADOW",
    "RuncContainer",
    "TtyProcess",
    "cri_annotations",
    "kube_cgroups_path",
    "make_config",
    "make_rootfs",
    "remove_cgroups",
    "runc_available",
]

RUNC_ROOT = Path("/run/runc")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def runc_available() -> str | None:
    """Why a runc container cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("runc"):
        return "runc is not installed (apt-get install runc)"
    if not BUSYBOX.exists():
        return "busybox-static is not installed (apt-get install busybox-static)"
    return None


@dataclass(frozen=True)
class TtyProcess:
    """A process started by :meth:`RuncContainer.exec_tty`."""

    pid: int
    master_fd: int

    def alive(self) -> bool:
        """True while the process exists and is not a zombie."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")

    def wait(self, timeout: float = 10) -> bool:
        """Wait until the process has exited; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.02)
        return not self.alive()

    def read_until(self, marker: bytes, timeout: float = 5) -> bytes:
        """Read the pty until ``marker`` appears (or timeout); return what was read."""
        import select

        buf = b""
        deadline = time.monotonic() + timeout
        while marker not in buf and time.monotonic() < deadline:
            r, _, _ = select.select([self.master_fd], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(self.master_fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
        return buf

    def close(self) -> None:
        """Close the pty master (the shell gets SIGHUP)."""
        with contextlib.suppress(OSError):
            os.close(self.master_fd)


@dataclass
class RuncContainer:
    """A busybox container run by runc with Kubernetes-shaped metadata."""

    pod_name: str = "fcap-test-pod"
    namespace: str = "default"
    container_name: str = "busybox"
    image: str = "docker.io/library/busybox:1.36"
    qos: str = "besteffort"
    privileged: bool = False
    runc_root: Path = RUNC_ROOT
    id: str = field(default_factory=lambda: secrets.token_hex(32))
    pod_uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    sandbox_id: str = field(default_factory=lambda: secrets.token_hex(32))
    workdir: Path | None = None
    started: bool = False
    #: Root filesystem as overlayfs (image = lower layer, writes in ``upperdir``),
    #: like containerd's snapshotter; Falco's proc.is_exe_upper_layer needs it.
    overlay: bool = False
    _mounted: bool = False

    @property
    def cgroups_path(self) -> str:
        """The config.json cgroupsPath."""
        return kube_cgroups_path(self.pod_uid, self.id, self.qos)

    @property
    def bundle(self) -> Path:
        """The bundle directory."""
        assert self.workdir is not None, "call prepare() or start() first"
        return self.workdir / "bundle"

    @property
    def rootfs(self) -> Path:
        """The container's root filesystem on the host."""
        return self.bundle / "rootfs"

    @property
    def annotations(self) -> dict[str, str]:
        """The CRI annotations written into config.json."""
        return cri_annotations(container_name=self.container_name, pod_name=self.pod_name,
                               namespace=self.namespace, pod_uid=self.pod_uid,
                               image=self.image, sandbox_id=self.sandbox_id)

    def _runc(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.runc_root), *args]

    def prepare(self, args: list[str], *, terminal: bool = False) -> Path:
        """Create the bundle (rootfs + config.json) for ``args``; return the bundle path."""
        why = runc_available()
        if why:
            raise PrerequisiteError(f"cannot run a runc container: {why}")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="fcap-runc-"))
            os.chmod(self.workdir, 0o711)
        self.bundle.mkdir(exist_ok=True)
        if self.overlay:
            self._mount_overlay()
        elif not (self.rootfs / "bin/busybox").exists():
            make_rootfs(self.rootfs)
        config = make_config(args, cgroups_path=self.cgroups_path, annotations=self.annotations,
                             terminal=terminal, privileged=self.privileged)
        (self.bundle / "config.json").write_text(json.dumps(config, indent=2))
        return self.bundle

    @property
    def upperdir(self) -> Path:
        """The overlay's upper (container-writable) layer on the host."""
        assert self.workdir is not None
        return self.workdir / "upper"

    def _mount_overlay(self) -> None:
        if self._mounted:
            return
        assert self.workdir is not None
        lower, work = self.workdir / "lower", self.workdir / "work"
        if not (lower / "bin/busybox").exists():
            make_rootfs(lower)
        for d in (self.upperdir, work, self.rootfs):
            d.mkdir(exist_ok=True)
        opts = f"lowerdir={lower},upperdir={self.upperdir},workdir={work}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(self.rootfs)],
                       check=True, capture_output=True)
        self._mounted = True

    def start(self, args: list[str] | None = None, *, timeout: float = 20) -> int:
        """Run detached (``runc run -d``); return the init pid on the host."""
        self.prepare(args or ["sleep", "3600"])
        self.started = True
        # The container inherits runc's stdio: a pipe would never see EOF, so
        # collect runc's errors in a file.
        with tempfile.TemporaryFile() as err:
            r = subprocess.run(self._runc("run", "-d", "--bundle", str(self.bundle), self.id),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err, timeout=timeout)
            if r.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"runc run failed: {err.read().decode(errors='replace')}")
        return self.pid

    def run(self, args: list[str], *, timeout: float = 30,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run in the foreground (``runc run``) until the command exits; the container is deleted."""
        self.prepare(args)
        try:
            return subprocess.run(self._runc("run", "--bundle", str(self.bundle), self.id),
                                  input=input, capture_output=True, timeout=timeout)
        finally:
            self.started = True
            self.cleanup()

    def state(self) -> dict:
        """``runc state`` as a dict."""
        out = subprocess.run(self._runc("state", self.id), capture_output=True, check=True)
        return json.loads(out.stdout)

    @property
    def pid(self) -> int:
        """The container's init pid on the host."""
        return int(self.state()["pid"])

    def exec(self, args: list[str], *, timeout: float = 30, input: bytes | None = None,
             user: str | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
        """``runc exec`` a command without a TTY; waits for it."""
        extra = []
        if user:
            extra += ["--user", user]
        if cwd:
            extra += ["--cwd", cwd]
        return subprocess.run(self._runc("exec", *extra, self.id, *args), input=input,
                              capture_output=True, timeout=timeout)

    def exec_tty(self, args: list[str], *, timeout: float = 20,
                 env: list[str] | None = None) -> TtyProcess:
        """``runc exec --tty`` with a console socket, like ``kubectl exec -it``.

        runc only hands out the pty over a console socket when it detaches, so
        this runs ``runc exec -d --tty --console-socket``; the master fd arrives
        with SCM_RIGHTS (``socket.recv_fds``). Returns a :class:`TtyProcess`
        (host pid, pty master fd; the caller closes it).
        """
        sockdir = Path(tempfile.mkdtemp(prefix="fcap-console-"))
        path = sockdir / "console.sock"
        pidfile = sockdir / "pid"
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            srv.bind(str(path))
            srv.listen(1)
            srv.settimeout(timeout)
            extra = [f"--env={e}" for e in (env or ["TERM=xterm"])]
            with tempfile.TemporaryFile() as err:
                proc = subprocess.Popen(
                    self._runc("exec", "-d", "--tty", "--console-socket", str(path),
                               "--pid-file", str(pidfile), *extra, self.id, *args),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    proc.kill()
                    proc.wait()
                    err.seek(0)
                    msg = err.read().decode(errors="replace").strip()
                    raise RuntimeError(f"runc exec --tty sent no console: {msg}") from None
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                rc = proc.wait(timeout)
                if rc != 0 or not fds:
                    err.seek(0)
                    for fd in fds:
                        os.close(fd)
                    raise RuntimeError(f"runc exec --tty failed: {err.read().decode(errors='replace')}")
            pid = int(pidfile.read_text().strip())
            return TtyProcess(pid=pid, master_fd=fds[0])
        finally:
            srv.close()
            shutil.rmtree(sockdir, ignore_errors=True)

    def cleanup(self) -> None:
        """Kill and delete the container, remove its cgroups and the bundle."""
        if self.started:
            subprocess.run(self._runc("kill", self.id, "KILL"), capture_output=True)
            for _ in range(50):
                r = subprocess.run(self._runc("delete", "--force", self.id), capture_output=True)
                if r.returncode == 0 or b"does not exist" in r.stderr or b"not exist" in r.stderr:
                    break
                time.sleep(0.1)
            remove_cgroups(self.cgroups_path)
            self.started = False
        if self._mounted:
            subprocess.run(["umount", "-l", str(self.rootfs)], capture_output=True)
            self._mounted = False
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> RuncContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def remove_cgroups(cgroups_path: str) -> None:
    """Remove ``cgroups_path`` (and empty kubepods parents we created) in every hierarchy."""
    rel = cgroups_path.strip("/")
    parts = rel.split("/")
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        for depth in range(len(parts), 0, -1):
            d = hierarchy.joinpath(*parts[:depth])
            if d.is_dir():
                with contextlib.suppress(OSError):
                    d.rmdir()
