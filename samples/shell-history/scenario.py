#!/usr/bin/env python3
"""shell-history: an intruder wipes the shell history in a container.

`rm` of root's .ash_history, and `: > .bash_history` (truncation to nothing)
run inside a busybox container; both files exist beforehand.

Usage (root): .venv/bin/python samples/shell-history/scenario.py OUT.parquet
"""

from fcap.analyze.regress.scenario import main_out, recording
from fcap.capture.runc import RuncContainer


def main() -> None:
    out = main_out()
    with RuncContainer(pod_name="worker-7b9d2", namespace="batch", container_name="worker") as c:
        c.start(["sleep", "600"])
        (c.rootfs / "root/.ash_history").write_text("cat /etc/shadow\nwget http://x/y\n")
        (c.rootfs / "root/.bash_history").write_text("id\n")
        with recording(out):
            r = c.exec(["sh", "-c", "rm /root/.ash_history; : > /root/.bash_history"])
            assert r.returncode == 0, r.stderr


if __name__ == "__main__":
    main()
