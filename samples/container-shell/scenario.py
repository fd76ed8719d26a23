#!/usr/bin/env python3
"""container-shell: an interactive shell in a Kubernetes-shaped runc container.

Someone runs `kubectl exec -it shop/web-6f7c9 -- sh` (here: `runc exec --tty`
into a busybox container with the pod's cgroup path and CRI annotations),
reads /etc/shadow and adds a root user to /etc/passwd.

Usage (root): .venv/bin/python samples/container-shell/scenario.py OUT.parquet
"""

from fcap.analyze.regress.scenario import finish, main_out, recording, typed
from fcap.capture.runc import RuncContainer


def main() -> None:
    out = main_out()
    with RuncContainer(pod_name="web-6f7c9", namespace="shop", container_name="web") as c:
        c.start(["sleep", "600"])
        with recording(out):
            shell = c.exec_tty(["sh"])
            typed(shell.master_fd, [
                "cat /etc/shadow",
                "echo 'backdoor:x:0:0::/root:/bin/sh' >> /etc/passwd",
                "exit",
            ])
            finish(shell, shell.master_fd)


if __name__ == "__main__":
    main()
