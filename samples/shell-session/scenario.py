#!/usr/bin/env python3
"""shell-session: typed commands on a host terminal and in a pod, for `fcap sessions`.

Types, like a person would, into bash on a host pty (a builtin's redirection,
a pipeline, quotes with a backslash continuation, a /dev/tcp connection, a
password read with echo off, mv and rm) and into busybox sh in a runc
container of pod prod/web-0 entered like `kubectl exec -it web-0 -- /bin/sh`
(a write to /etc/passwd, a read of /etc/shadow). Recorded with
`fcap record --pid <this process>` (the scenario's process tree).

Usage (root): .venv/bin/python samples/shell-session/scenario.py OUT.parquet
"""

import shutil

from fcap.analyze.regress.scenario import main_out, recording
from fcap.capture.shell_scenario import new_result, type_sessions


def main() -> None:
    out = main_out()
    res, srv = new_result()
    try:
        with recording(out):
            type_sessions(res)
    finally:
        srv.close()
        shutil.rmtree(res.workdir, ignore_errors=True)
    print(f"secret typed with echo off (must not be in the capture): {res.secret}")


if __name__ == "__main__":
    main()
