"""OCI bundles for the busybox test containers: root filesystem and config.json.

Everything :class:`fcap.capture.runc.RuncContainer` writes before it calls runc:
a minimal busybox root filesystem (:func:`make_rootfs`: ``/bin/busybox`` and its
applet symlinks, ``/etc/passwd``, ``/etc/group``, ``/etc/shadow``, ``/tmp``), the
kubelet's cgroupfs-driver ``cgroupsPath`` (:func:`kube_cgroups_path`), the CRI
annotations containerd writes (:func:`cri_annotations`) and the OCI runtime
``config.json`` itself (:func:`make_config`). Pure file and dict building: no
runc, no root needed except to write the files where the caller asks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from fcap.schema import CAPABILITY_NAMES

BUSYBOX = Path("/bin/busybox")

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
    names = list(CAPABILITY_NAMES)
    return names[: last + 1]
