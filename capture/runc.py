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

:func:`runc_available` says why it cannot run here (None when it can).
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

from fcap.errors import PrerequisiteError

BUSYBOX = Path("/bin/busybox")
RUNC_ROOT = Path("/run/runc")
CGROUP_ROOT = Path("/sys/fs/cgroup")

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "app:x:1000:1000:app user:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\napp:x:1000:\nnogroup:x:65534:\n"
SHADOW = "root:$6$fcaptest$notarealhash:19000:0:99999:7:::\napp:!:19000:0:99999:7:::\n"

#: The Linux capabilities a default (unprivileged) containerd container gets.
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def runc_available() -> str | None:
    """Why a runc container cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("runc"):
        return "runc is not installed (apt-get install runc)"
    if not BUSYBOX.exists():
        return "busybox-static is not installed (apt-get install busybox-static)"
    return None


def _applets() -> list[str]:
    try:
        out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
        return [a for a in out.stdout.split() if a and "/" not in a]
    except (OSError, subprocess.CalledProcessError):
        return ["sh", "ls", "cat", "echo", "sleep", "id", "touch", "rm", "mv", "ps", "wget"]


def make_rootfs(rootfs: Path) -> None:
    """A minimal busybox root filesystem."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/app", "var/www", "usr/bin"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
    for applet in _applets():
        link = rootfs / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc/passwd").write_text(PASSWD)
    (rootfs / "etc/group").write_text(GROUP)
    (rootfs / "etc/shadow").write_text(SHADOW)
    os.chmod(rootfs / "etc/shadow", 0o640)
    (rootfs / "etc/hostname").write_text("fcap-test\n")
    (rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n")


def kube_cgroups_path(pod_uid: str, container_id: str, qos: str = "besteffort") -> str:
    """The cgroupfs-driver path the kubelet gives a container: /kubepods/<qos>/pod<uid>/<id>."""
    if qos == "guaranteed":
        return f"/kubepods/pod{pod_uid}/{container_id}"
    return f"/kubepods/{qos}/pod{pod_uid}/{container_id}"


def cri_annotations(*, container_name: str, pod_name: str, namespace: str, pod_uid: str,
                    image: str, sandbox_id: str) -> dict[str, str]:
    """The CRI annotations containerd writes into a container's config.json."""
    return {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": container_name,
        "io.kubernetes.cri.image-name": image,
        "io.kubernetes.cri.sandbox-id": sandbox_id,
        "io.kubernetes.cri.sandbox-name": pod_name,
        "io.kubernetes.cri.sandbox-namespace": namespace,
        "io.kubernetes.cri.sandbox-uid": pod_uid,
    }


def make_config(args: list[str], *, cgroups_path: str, annotations: dict[str, str],
                hostname: str = "fcap-test", terminal: bool = False,
                privileged: bool = False, env: list[str] | None = None) -> dict:
    """An OCI runtime config.json (the shape of ``runc spec``, Kubernetes-flavoured)."""
    caps = DEFAULT_CAPS
    if privileged:
        caps = _all_caps()
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           "HOME=/root", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": not privileged,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "annotations": annotations,
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": privileged, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": [] if privileged else ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": [] if privileged else ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def _all_caps() -> list[str]:
    last = 40
    with contextlib.suppress(OSError, ValueError):
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    names = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]
    return names[: last + 1]


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
