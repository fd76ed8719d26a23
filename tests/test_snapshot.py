"""The /proc start snapshot, checked against this test process itself."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pyarrow.compute as pc
from fcap.capture.hostinfo import boot_time_ns, host_meta
from fcap.capture.netinfo import _hex_addr, parse_unix
from fcap.capture.snapshot import parse_stat, take_snapshot

from fcap.schema import FDS, PROCESSES


def test_snapshot_of_this_process(tmp_path: Path) -> None:
    marker = tmp_path / "opened-by-test.txt"
    f = open(marker, "w")  # noqa: SIM115
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    usock = socket.socket(socket.AF_UNIX)
    upath = str(tmp_path / "u.sock")
    usock.bind(upath)
    usock.listen()
    ev = threading.Event()
    t = threading.Thread(target=ev.wait)
    t.start()
    try:
        snap = take_snapshot(with_env=True)
        assert snap.processes.schema.equals(PROCESSES) and snap.fds.schema.equals(FDS)
        me = snap.processes.filter(pc.equal(snap.processes["pid"], os.getpid())).to_pylist()
        assert len(me) == 1
        p = me[0]
        cmdline = Path("/proc/self/cmdline").read_bytes().split(b"\0")[:-1]
        assert p["argv"] == [a.decode() for a in cmdline]
        assert p["exe"] == cmdline[0].decode()
        assert p["exepath"] == os.path.realpath("/proc/self/exe")
        assert p["cwd"] == os.getcwd()
        assert p["ppid"] == os.getppid()
        assert p["uid"] == os.getuid() and p["euid"] == os.geteuid() and p["gid"] == os.getgid()
        assert p["sid"] == os.getsid(0) and p["pgid"] == os.getpgid(0)
        assert p["exe_ino"] == os.stat("/proc/self/exe").st_ino
        assert t.native_id in p["threads"] and os.getpid() in p["threads"]
        assert p["mntns"] == os.stat("/proc/self/ns/mnt").st_ino
        assert any(e.startswith("PATH=") for e in p["env"])
        assert boot_time_ns() < p["start_ts"] < __import__("time").time_ns()
        fds = {r["fd"]: r for r in
               snap.fds.filter(pc.equal(snap.fds["pid"], os.getpid())).to_pylist()}
        fr = fds[f.fileno()]
        assert fr["type"] == "file" and fr["name"] == str(marker)
        assert fr["flags"] & os.O_WRONLY and fr["ino"] == os.fstat(f.fileno()).st_ino
        lr = fds[srv.fileno()]
        assert (lr["type"], lr["listening"], lr["laddr"], lr["lport"]) == (
            "ipv4", True, "127.0.0.1", port)
        assert lr["name"] == f"127.0.0.1:{port}"
        cr = fds[cli.fileno()]
        cport = cli.getsockname()[1]
        assert (cr["raddr"], cr["rport"], cr["lport"], cr["l4proto"]) == ("127.0.0.1", port, cport, 6)
        assert cr["name"] == f"127.0.0.1:{cport}->127.0.0.1:{port}"
        ur = fds[usock.fileno()]
        assert ur["type"] == "unix" and ur["unix_path"] == upath and ur["listening"] is True
    finally:
        ev.set()
        t.join()
        f.close()
        cli.close()
        srv.close()
        usock.close()


def test_parse_stat_odd_comm() -> None:
    text = "123 (a) b (c)) S 1 123 123 34816 -1 4194560 " + " ".join(["0"] * 12) + " 4242 0 0\n"
    s = parse_stat(text)
    assert s["comm"] == "a) b (c)" and s["ppid"] == 1 and s["tty_nr"] == 34816
    assert s["starttime"] == 4242


def test_hex_addresses_and_unix_table() -> None:
    assert _hex_addr("0100007F:1F90") == ("127.0.0.1", 8080)
    assert _hex_addr("00000000000000000000000001000000:0016") == ("::1", 22)
    assert _hex_addr("0000000000000000FFFF00000100007F:0050") == ("127.0.0.1", 80)
    t = parse_unix("Num RefCount Protocol Flags Type St Inode Path\n"
                   "0000: 00000002 00000000 00010000 0001 01 555 /run/x.sock\n"
                   "0000: 00000002 00000000 00000000 0001 03 556\n")
    assert t[555] == {"sock_family": 1, "unix_path": "/run/x.sock", "listening": True}
    assert t[556]["unix_path"] is None and t[556]["listening"] is False


def test_host_meta() -> None:
    m = host_meta(syscalls=["openat", "execve"], command=["fcap", "record"])
    assert m["hostname"] == socket.gethostname() and m["kernel"] == os.uname().release
    assert m["syscalls"] == ["execve", "openat"] and m["command"] == ["fcap", "record"]
    btime = int(next(ln.split()[1] for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime")))
    assert abs(m["boot_time_ns"] - btime * 10**9) < 2 * 10**9


def test_start_tables_have_every_side_table() -> None:
    from fcap.capture.snapshot import start_tables

    from fcap.schema import SIDE_TABLES

    tables = start_tables(exclude_pids={os.getpid()})
    assert set(tables) == set(SIDE_TABLES)
    for name, t in tables.items():
        assert t.schema.equals(SIDE_TABLES[name]), name
    assert os.getpid() not in tables["processes"].column("pid").to_pylist()
    assert os.getppid() in tables["processes"].column("pid").to_pylist()
    assert "root" in tables["users"].column("name").to_pylist()
    assert tables["cgroups"].num_rows >= 1  # at least the cgroup2 root


def test_snapshot_survives_processes_exiting_mid_scan() -> None:
    import subprocess

    from fcap.capture.netinfo import NetCache
    from fcap.capture.snapshot import _Ctx, read_fds, read_process

    p = subprocess.Popen(["true"])
    p.wait()
    assert read_process(p.pid, _Ctx(boot_time_ns(), False)) is None
    assert read_fds(p.pid, None, NetCache()) == []
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            subprocess.run(["sh", "-c", "sleep 0.001 & exec true"], check=False)

    workers = [threading.Thread(target=churn) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(5):
            snap = take_snapshot()
            assert snap.processes.num_rows > 0
    finally:
        stop.set()
        for w in workers:
            w.join()
