#!/usr/bin/env python3
"""fileless-exec: programs executed from /dev/shm and from a memfd, on the host.

1. busybox copied to /dev/shm/busybox and run from there (`/dev/shm/busybox id`).
2. A Python loader writes busybox into an anonymous memory file
   (memfd_create) and executes it with fexecve (execveat AT_EMPTY_PATH):
   no file on disk holds the program.

Usage (root): .venv/bin/python samples/fileless-exec/scenario.py OUT.parquet
"""

import os
import shutil
import subprocess

from fcap.analyze.regress.scenario import main_out, recording

LOADER = """
import os
fd = os.memfd_create("payload", 0)
with open("/bin/busybox", "rb") as f:
    os.write(fd, f.read())
os.execve(fd, ["busybox", "echo", "hello from memory"], {})
"""


def main() -> None:
    out = main_out()
    staged = "/dev/shm/busybox"
    shutil.copy2("/bin/busybox", staged)
    os.chmod(staged, 0o755)
    try:
        with recording(out):
            subprocess.run([staged, "id"], check=True)
            subprocess.run(["/usr/bin/python3", "-c", LOADER], check=True)
    finally:
        os.unlink(staged)


if __name__ == "__main__":
    main()
