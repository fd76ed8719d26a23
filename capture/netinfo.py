"""Resolve /proc fd link targets: sockets via /proc/PID/net/* by inode, pipes, anon inodes."""

from __future__ import annotations

import os
import socket
import stat as st
from typing import Any

AF_INET, AF_INET6, AF_UNIX, AF_NETLINK = 2, 10, 1, 16
IPPROTO_TCP, IPPROTO_UDP = 6, 17
TCP_LISTEN = 0x0A
UNIX_ACCEPTCON = 0x10000

#: anon_inode names -> Falco fd.type
ANON_TYPES = {
    "eventfd": "event", "[eventfd]": "event", "[signalfd]": "signalfd", "[eventpoll]": "eventpoll",
    "inotify": "inotify", "[timerfd]": "timerfd", "bpf-map": "bpf", "bpf-prog": "bpf",
    "bpf_link": "bpf", "bpf-link": "bpf", "[userfaultfd]": "userfaultfd", "[io_uring]": "io_uring",
    "[pidfd]": "pidfd", "[perf_event]": "other", "[fanotify]": "other",
}


def _hex_addr(text: str) -> tuple[str, int]:
    """'0100007F:1F90' (kernel byte order words) -> ('127.0.0.1', 8080)."""
    addr, port = text.split(":")
    raw = bytes.fromhex(addr)
    # each 32-bit word is in host (little-endian) order
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    text_addr = socket.inet_ntop(fam, raw)
    if fam == socket.AF_INET6 and text_addr.startswith("::ffff:") and "." in text_addr:
        text_addr = text_addr[len("::ffff:"):]
    return text_addr, int(port, 16)


def parse_inet(text: str, family: int, proto: int) -> dict[int, dict[str, Any]]:
    """/proc/net/{tcp,tcp6,udp,udp6} -> {inode: socket fields}."""
    out = {}
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        try:
            laddr, lport = _hex_addr(f[1])
            raddr, rport = _hex_addr(f[2])
            state = int(f[3], 16)
            ino = int(f[9])
        except (ValueError, OSError):
            continue
        if ino == 0:
            continue
        listening = proto == IPPROTO_TCP and state == TCP_LISTEN
        out[ino] = {
            "sock_family": family, "l4proto": proto, "laddr": laddr, "lport": lport,
            "raddr": None if listening else raddr, "rport": None if listening else rport,
            "listening": listening,
        }
    return out


def parse_unix(text: str) -> dict[int, dict[str, Any]]:
    """/proc/net/unix -> {inode: fields}."""
    out = {}
    for line in text.splitlines()[1:]:
        f = line.split(None, 7)
        if len(f) < 7:
            continue
        try:
            flags = int(f[3], 16)
            ino = int(f[6])
        except ValueError:
            continue
        path = f[7].strip() if len(f) > 7 else None
        out[ino] = {"sock_family": AF_UNIX, "unix_path": path,
                    "listening": bool(flags & UNIX_ACCEPTCON)}
    return out


class NetCache:
    """Socket tables per network namespace (read through some pid in that namespace)."""

    def __init__(self) -> None:
        self.by_ns: dict[Any, dict[int, dict[str, Any]]] = {}

    def table(self, pid: int, netns: int | None) -> dict[int, dict[str, Any]]:
        key = netns if netns is not None else ("pid", pid)
        if key not in self.by_ns:
            self.by_ns[key] = self._load(pid)
        return self.by_ns[key]

    @staticmethod
    def _load(pid: int) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        base = f"/proc/{pid}/net"
        for name, fam, proto in (("tcp", AF_INET, IPPROTO_TCP), ("tcp6", AF_INET6, IPPROTO_TCP),
                                 ("udp", AF_INET, IPPROTO_UDP), ("udp6", AF_INET6, IPPROTO_UDP)):
            try:
                with open(f"{base}/{name}") as f:
                    out.update(parse_inet(f.read(), fam, proto))
            except OSError:
                pass
        try:
            with open(f"{base}/unix") as f:
                out.update(parse_unix(f.read()))
        except OSError:
            pass
        try:
            with open(f"{base}/netlink") as f:
                for line in f.read().splitlines()[1:]:
                    parts = line.split()
                    if len(parts) >= 10 and parts[-1].isdigit():
                        out[int(parts[-1])] = {"sock_family": AF_NETLINK}
        except OSError:
            pass
        return out


def _bracket_ino(target: str) -> int | None:
    try:
        return int(target[target.index("[") + 1: target.index("]")])
    except ValueError:
        return None


def socket_name(info: dict[str, Any]) -> str:
    """Falco-style fd.name of a socket: 'l:p->r:p', 'l:p' for listeners, the unix path."""
    fam = info.get("sock_family")
    if fam in (AF_INET, AF_INET6):
        def fmt(a: str | None, p: int | None) -> str:
            return f"{a}:{p}"
        if info.get("raddr") is None or info.get("listening"):
            return fmt(info.get("laddr"), info.get("lport"))
        return f"{fmt(info['laddr'], info['lport'])}->{fmt(info['raddr'], info['rport'])}"
    if fam == AF_UNIX:
        return info.get("unix_path") or ""
    return ""


def classify(pid: int, fd: int, target: str, netns: int | None, nets: NetCache) -> dict[str, Any]:
    """FDS fields (type, name, ino, socket fields) for one fd link target."""
    if target.startswith("socket:["):
        ino = _bracket_ino(target)
        info = nets.table(pid, netns).get(ino or -1)
        if info is None:
            return {"type": "other", "ino": ino}
        fam = info.get("sock_family")
        ftype = {AF_INET: "ipv4", AF_INET6: "ipv6", AF_UNIX: "unix", AF_NETLINK: "netlink"}[fam]
        if fam == AF_INET6 and info.get("laddr") and "." in str(info.get("laddr")):
            ftype = "ipv4"
        row = dict(info)
        row.update({"type": ftype, "ino": ino, "name": socket_name(info) or target})
        return row
    if target.startswith("pipe:["):
        return {"type": "pipe", "ino": _bracket_ino(target)}
    if target.startswith("anon_inode:"):
        kind = target[len("anon_inode:"):]
        return {"type": ANON_TYPES.get(kind, "other")}
    if target.startswith("/memfd:"):
        return {"type": "memfd"}
    try:
        s = os.stat(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return {"type": "file"}
    ftype = "directory" if st.S_ISDIR(s.st_mode) else "file"
    return {"type": ftype, "ino": s.st_ino}
