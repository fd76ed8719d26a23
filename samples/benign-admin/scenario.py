#!/usr/bin/env python3
"""benign-admin: routine administration that must raise no alert (negative case).

On the host: read the OS release, list /etc, look at processes and disks, and
enter a container's UTS namespace with nsenter to read its hostname. In the
container: a non-interactive `runc exec` health check (cat /etc/hostname, ls /)
and a shell without a terminal (`sh -c 'echo ok'`).

Usage (root): .venv/bin/python samples/benign-admin/scenario.py OUT.parquet
"""

import subprocess

from fcap.analyze.regress.scenario import main_out, recording
from fcap.capture.runc import RuncContainer

HOST = "cat /etc/os-release > /dev/null; ls -l /etc > /dev/null; id; ps > /dev/null; df > /dev/null"


def main() -> None:
    out = main_out()
    with RuncContainer(pod_name="web-6f7c9", namespace="shop", container_name="web") as c:
        pid = c.start(["sleep", "600"])
        with recording(out):
            subprocess.run(["/bin/sh", "-c", HOST], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], check=True)
            for cmd in (["cat", "/etc/hostname"], ["ls", "/"], ["sh", "-c", "echo ok"]):
                r = c.exec(cmd)
                assert r.returncode == 0, r.stderr


if __name__ == "__main__":
    main()
