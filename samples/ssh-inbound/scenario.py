#!/usr/bin/env python3
"""ssh-inbound: an inbound connection accepted on TCP port 22.

In a fresh network namespace (so nothing on the host is disturbed), a
listener on 127.0.0.1:22 accepts one connection from a client, the shape of
an SSH login or of a tunnel forwarded to sshd. busybox nc plays both sides.

Usage (root): .venv/bin/python samples/ssh-inbound/scenario.py OUT.parquet
"""

import subprocess

from fcap.analyze.regress.scenario import main_out, recording

SCRIPT = """
busybox ip link set lo up
busybox nc -l -p 22 > /dev/null &
sleep 0.5
echo 'SSH-2.0-OpenSSH_9.2p1' | busybox nc -w 2 127.0.0.1 22
wait
"""


def main() -> None:
    out = main_out()
    with recording(out):
        subprocess.run(["unshare", "--net", "/bin/sh", "-c", SCRIPT], check=True, timeout=20)


if __name__ == "__main__":
    main()
