#!/usr/bin/env python3
"""package-manager: `apt-get update` run inside a running container.

The busybox image has no apt, so the scenario installs a stand-in
/usr/bin/apt-get shell script into the image (before recording); what the
rule sees is the real exec of a program named apt-get in the container.

Usage (root): .venv/bin/python samples/package-manager/scenario.py OUT.parquet
"""

import os

from fcap.analyze.regress.scenario import main_out, recording
from fcap.capture.runc import RuncContainer

FAKE_APT = """#!/bin/sh
# stand-in for apt-get: touches the package lists like `apt-get update` would
mkdir -p /var/lib/apt/lists
echo "Hit:1 http://deb.debian.org/debian bookworm InRelease" > /var/lib/apt/lists/partial
echo "Reading package lists... Done"
"""


def main() -> None:
    out = main_out()
    with RuncContainer(pod_name="api-5d8f4", namespace="shop", container_name="api") as c:
        c.start(["sleep", "600"])
        apt = c.rootfs / "usr/bin/apt-get"
        apt.write_text(FAKE_APT)
        os.chmod(apt, 0o755)
        with recording(out):
            r = c.exec(["apt-get", "update"])
            assert r.returncode == 0, r.stderr


if __name__ == "__main__":
    main()
