#!/usr/bin/env python3
"""dropped-binary: a binary written into a running container, then executed.

The container's root filesystem is an overlay (image = lower layer, container
writes = upper layer), as containerd's snapshotter builds it. Inside, a shell
copies busybox to /tmp/.cache/busybox, makes it executable and runs it: the
executed file exists only in the upper layer. Running /bin/ls (image file) in
the same container must not alert.

Usage (root): .venv/bin/python samples/dropped-binary/scenario.py OUT.parquet
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from fcap.analyze.regress.scenario import main_out, recording
from fcap.capture.runc import RuncContainer, make_rootfs


def main() -> None:
    out = main_out()
    layers = Path(tempfile.mkdtemp(prefix="fcap-overlay-"))
    merged = layers / "merged"
    try:
        for d in ("lower", "upper", "work", "merged"):
            (layers / d).mkdir()
        make_rootfs(layers / "lower")
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={layers}/lower,upperdir={layers}/upper,workdir={layers}/work", str(merged)],
            check=True,
        )
        c = RuncContainer(pod_name="cache-2", namespace="shop", container_name="redis")
        c.workdir = workdir = Path(tempfile.mkdtemp(prefix="fcap-runc-"))
        (workdir / "bundle" / "rootfs").mkdir(parents=True)
        subprocess.run(["mount", "--bind", str(merged), str(workdir / "bundle" / "rootfs")],
                       check=True)
        try:
            c.start(["sleep", "600"])
            with recording(out):
                r = c.exec(["ls", "/"])
                assert r.returncode == 0, r.stderr
                r = c.exec(["sh", "-c",
                            "mkdir -p /tmp/.cache && cp /bin/busybox /tmp/.cache/busybox"
                            " && chmod +x /tmp/.cache/busybox && /tmp/.cache/busybox uname -a"])
                assert r.returncode == 0, r.stderr
        finally:
            c.workdir = None  # keep cleanup() from deleting through the mount
            c.cleanup()
            subprocess.run(["umount", str(workdir / "bundle" / "rootfs")], check=False)
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        subprocess.run(["umount", str(merged)], check=False)
        shutil.rmtree(layers, ignore_errors=True)


if __name__ == "__main__":
    main()
