"""Live recordings of the recorder's options and faults, checked row by row.

Record-time filters (``--pid`` with descendants, ``--exclude-comm``,
``--container``), ``--max-events``, ``kill -9`` and ``fcap repair``, a full
disk, ``--snaplen`` payloads with UDP, a short-lived container, a refused
connect, and typed shell lines under the ``--pid`` filter. The scripted
workload of the main recording is in ``tests/test_record_live.py``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from live_support import record_while
from test_record_live import REPO, _events, _rows

pytestmark = pytest.mark.live


def _record_while(tmp_path, work, **opts):
    """Record (library API) while ``work()`` runs in a thread; returns (result, events)."""
    res = record_while(tmp_path / "f.parquet", work, **opts)
    return res, _events(res.files)


def test_filters_pid_tree_and_comms(tmp_path) -> None:
    from fcap.capture.filters import Filters

    tag = secrets.token_hex(4)
    root = subprocess.Popen(["bash", "-c", "read x; sh -c 'cat /etc/hostname; ls / >/dev/null'"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)  # fmt: skip
    outsider = tmp_path / f"out-{tag}"

    def work() -> None:
        subprocess.run(["cat", "/etc/hostname"], stdout=subprocess.DEVNULL)  # not in the tree
        outsider.write_text("x")
        root.communicate(b"go\n", timeout=20)

    res, ev = _record_while(tmp_path, work, filters=Filters(pids=(root.pid,), exclude_comms=("ls",)))
    pids = set(pc.unique(ev["pid"]).to_pylist())
    assert root.pid in pids
    # every recorded process descends from the root (parents recorded in the same capture)
    ppids = {r["pid"]: r["ppid"] for r in ev.select(["pid", "ppid"]).to_pylist()}
    for p in pids:
        chain, q = [], p
        while q in ppids and q != root.pid and len(chain) < 10:
            chain.append(q)
            q = ppids[q]
        assert q == root.pid, (p, chain)
    assert "ls" not in set(pc.unique(ev["comm"]).to_pylist())
    assert "sh" in set(pc.unique(ev["comm"]).to_pylist())
    assert not [r for r in ev.to_pylist() if r["path"] == str(outsider)]
    from fcap.capture.reader import open_capture

    assert open_capture(res.files).meta[0]["filters"]["pid"] == [root.pid]


def test_max_events_is_exact(tmp_path) -> None:
    def work() -> None:
        for _ in range(20):
            subprocess.run(["true"])

    res, ev = _record_while(tmp_path, work, max_events=25, syscalls="execve,procexit,openat,close")
    assert res.events == 25 and ev.num_rows == 25


def test_kill_9_keeps_the_recording(tmp_path) -> None:
    out = tmp_path / "k.parquet"
    proc = subprocess.Popen([str(REPO / ".venv/bin/fcap"), "record", "-o", str(out), "-q",
                             "--no-shell", "-d", "60"], stderr=subprocess.DEVNULL)  # fmt: skip
    journal = Path(str(out) + ".partial")
    for _ in range(300):
        if journal.exists():
            break
        time.sleep(0.1)
    tag = secrets.token_hex(4)
    marker = tmp_path / f"marker-{tag}"
    marker.write_text("x")
    time.sleep(1.5)  # > one flush interval
    proc.kill()
    proc.wait(10)
    assert not out.exists()
    rep = subprocess.run([str(REPO / ".venv/bin/fcap"), "repair", str(out)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert rep.returncode == 0, rep.stderr
    ev = _events([out])
    assert [r for r in ev.to_pylist() if r["path"] == str(marker) and r["syscall"] == "openat"]


def test_disk_full_stops_with_a_clear_error(tmp_path) -> None:
    from fcap.errors import CaptureError

    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        stop_at = time.monotonic() + 30

        def work() -> None:  # plenty of rows with long distinct paths until the disk fills
            i = 0
            while time.monotonic() < stop_at and not (mnt / "full").exists():
                for _ in range(200):
                    with contextlib.suppress(OSError):
                        os.stat(f"/nonexistent/{secrets.token_hex(40)}/{i}")
                    i += 1
                subprocess.run(["true"])
                if any(mnt.iterdir()) and _tree_bytes(mnt) > 900_000:
                    (tmp_path / "seen").write_text("x")

        with pytest.raises(CaptureError, match=r"disk full|No space"):
            _record_while(mnt, work, syscalls="default,+newfstatat,+stat")
        # what was flushed is kept (journal or finalized file) and fcap repair can finalize it
        assert any(mnt.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


UDP_SCRIPT = r"""
import socket, sys
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.sendto(sys.argv[1].encode(), rx.getsockname())
data, peer = rx.recvfrom(100)
print(rx.getsockname()[1], peer[1], tx.fileno(), rx.fileno())
"""


def test_snaplen_payloads_and_udp(tmp_path) -> None:
    tag = secrets.token_hex(6)
    target = tmp_path / f"w-{tag}"
    got: dict = {}

    def work() -> None:
        subprocess.run(["sh", "-c", f"printf 'payload-{tag}-and-more-bytes' > {target}"], check=True)
        out = subprocess.run([sys.executable, "-c", UDP_SCRIPT, f"udp-{tag}"], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        got["udp"] = tuple(int(x) for x in out.split())

    res, ev = _record_while(tmp_path, work, snaplen=16, syscalls="default,+write")
    writes = [r for r in _rows(ev, syscall="write") if r["data"] and tag[:4].encode() in r["data"]]
    assert len(writes) == 1, writes
    w = writes[0]
    assert w["data"] == f"payload-{tag}".encode()[:16] and w["res"] == len(f"payload-{tag}-and-more-bytes")
    assert w["fd"] == 1
    rport, tport, tx_fd, rx_fd = got["udp"]
    sends = [r for r in _rows(ev, syscall="sendto") if r["rport"] == rport]
    assert len(sends) == 1
    s = sends[0]
    assert (s["raddr"], s["fd"], s["sock_family"], s["l4proto"]) == ("127.0.0.1", tx_fd, 2, 17)
    assert s["data"] == f"udp-{tag}".encode()[:16]
    recvs = [r for r in _rows(ev, syscall="recvfrom") if r["fd"] == rx_fd and r["lport"] == rport]
    assert len(recvs) == 1
    assert (recvs[0]["raddr"], recvs[0]["rport"]) == ("127.0.0.1", tport)
    assert recvs[0]["data"] == f"udp-{tag}".encode()[:16]
    from fcap.capture.reader import open_capture

    assert open_capture(res.files).meta[0]["snaplen"] == 16


@pytest.mark.container
def test_container_filter(tmp_path) -> None:
    from fcap.capture.filters import Filters
    from fcap.capture.runc import RuncContainer

    tag = secrets.token_hex(4)
    host_marker = tmp_path / f"host-{tag}"
    with RuncContainer(pod_name=f"pod-{tag}", namespace="fcap-live", container_name="f") as c:
        c.start(["sleep", "60"])

        def work() -> None:
            host_marker.write_text("x")
            subprocess.run(["cat", str(host_marker)], check=True, stdout=subprocess.DEVNULL)
            assert c.exec(["sh", "-c", f"echo y > /tmp/in-{tag}"]).returncode == 0

        _, ev = _record_while(tmp_path, work, filters=Filters(containers=(c.id[:12],)))
    assert ev.num_rows > 0
    assert set(pc.unique(ev["container_id"]).to_pylist()) == {c.id}
    assert [r for r in ev.to_pylist() if r["path"] == f"/tmp/in-{tag}"]
    assert not [r for r in ev.to_pylist() if r["path"] == str(host_marker)]


@pytest.mark.container
def test_short_lived_container_is_in_the_capture(tmp_path) -> None:
    """A container that exists for well under a second still gets its container row."""
    from fcap.capture.reader import open_capture
    from fcap.capture.runc import RuncContainer

    tag = secrets.token_hex(4)
    c = RuncContainer(pod_name=f"pod-{tag}", namespace="fcap-live", container_name="brief")
    lived: list[float] = []

    def work() -> None:
        t0 = time.monotonic()
        r = c.run(["sh", "-c", f"echo x > /tmp/brief-{tag}; sleep 0.3"])
        lived.append(time.monotonic() - t0)
        assert r.returncode == 0, r.stderr

    res, ev = _record_while(tmp_path, work)
    assert lived[0] < 1.5  # runc run + delete, container included
    rows = [r for r in ev.to_pylist() if r["path"] == f"/tmp/brief-{tag}"]
    assert rows and {r["container_id"] for r in rows} == {c.id}
    ct = open_capture(res.files).side_table("containers")
    row = ct.filter(pc.equal(ct["id"], c.id)).to_pylist()
    assert len(row) == 1 and (row[0]["name"], row[0]["pod_name"]) == ("brief", f"pod-{tag}")


REFUSED_SCRIPT = r"""
import errno, socket
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
probe.close()  # nobody listens there now
cli = socket.socket()
err = cli.connect_ex(("127.0.0.1", port))
print(port, err, cli.fileno())
"""


def test_failed_connect_keeps_its_destination(tmp_path) -> None:
    got: dict = {}

    def work() -> None:
        out = subprocess.run([sys.executable, "-c", REFUSED_SCRIPT], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        got["port"], got["err"], got["fd"] = (int(x) for x in out.split())

    _, ev = _record_while(tmp_path, work, syscalls="connect,socket")
    assert got["err"] == 111  # ECONNREFUSED
    rows = [r for r in _rows(ev, syscall="connect") if r["res"] == -111 and r["fd"] == got["fd"]]
    rows = [r for r in rows if r["rport"] == got["port"]]
    assert len(rows) == 1, _rows(ev, syscall="connect")
    r = rows[0]
    assert (r["raddr"], r["sock_family"], r["l4proto"]) == ("127.0.0.1", 2, 6)


def test_shell_lines_obey_the_pid_filter(tmp_path) -> None:
    """Typed lines go through --pid like syscall rows: the followed shell's line only."""
    from fcap.capture.filters import Filters
    from fcap.capture.shell_tty import PtySession

    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PS1": "P> ", "TERM": "dumb", "HOME": "/tmp"}
    tag = secrets.token_hex(4)
    shells = [PtySession(["/bin/bash", "--norc", "--noprofile", "-i"], env=env) for _ in range(2)]
    try:
        for sh in shells:
            sh.expect("P> ")
        def work() -> None:
            time.sleep(0.5)  # the shell probe attaches to the running bash binary
            for i, sh in enumerate(shells):
                sh.type(f"echo line-{i}-{tag}\n")
                sh.expect("P> ")

        res = record_while(tmp_path / "s.parquet", work, settle=0.8, syscalls="execve",
                           shell=True, filters=Filters(pids=(shells[0].pid,)))
    finally:
        for sh in shells:
            sh.close()
    ev = _events(res.files)
    lines = {r["text"]: r for r in _rows(ev, syscall="shell_line")}
    assert f"echo line-0-{tag}" in lines, sorted(lines)
    assert f"echo line-1-{tag}" not in lines
    assert lines[f"echo line-0-{tag}"]["pid"] == shells[0].pid
    assert {r["pid"] for r in lines.values()} == {shells[0].pid}
