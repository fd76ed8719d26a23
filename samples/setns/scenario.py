#!/usr/bin/env python3
"""setns: a program joins a container's namespaces with setns(2).

Positive: a small Python program on the host (not a container runtime, not
nsenter) calls setns() on the container's UTS and mount namespace files, the
way an escape or lateral-movement tool enters a container.
Negative in the same capture: an administrator's `nsenter -t PID -u hostname`
on the host, and `runc exec` (the runtime enters namespaces all the time).

Usage (root): .venv/bin/python samples/setns/scenario.py OUT.parquet
"""

import subprocess
import sys

from fcap.analyze.regress.scenario import main_out, recording
from fcap.capture.runc import RuncContainer

JOINER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
for ns in ("uts", "mnt"):
    fd = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY)
    if libc.setns(fd, 0) != 0:
        raise OSError(ctypes.get_errno(), f"setns {ns}")
    os.close(fd)
print(open("/etc/hostname").read().strip())
"""


def main() -> None:
    out = main_out()
    with RuncContainer(pod_name="db-0", namespace="data", container_name="postgres") as c:
        pid = c.start(["sleep", "600"])
        with recording(out):
            subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], check=True)
            r = c.exec(["cat", "/etc/hostname"])
            assert r.returncode == 0, r.stderr
            subprocess.run(["/usr/bin/python3", "-c", JOINER, str(pid)], check=True)


if __name__ == "__main__":
    sys.exit(main())
