"""Live recordings: real syscalls, recorded by the real BPF program, checked row by row.

One recording (module fixture) runs a scripted workload: a uniquely named
binary executed by a relative path with arguments, a unique file created,
renamed and deleted by relative paths, a TCP connect/accept on 127.0.0.1, and
a process that existed before the recording and is killed during it. Another
recording runs commands inside a runc container with a Kubernetes-shaped
cgroup path. Every expectation below comes from the workload itself (names,
pids, ports it chose), not from the recorder's output. The options and faults
(filters, --max-events, kill -9, full disk, --snaplen, ...) are in
``tests/test_record_live_options.py``, the raw arguments in
``tests/test_record_live_args.py``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from live_support import record_while

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parents[1]

TCP_SCRIPT = r"""
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.socket(); cli.connect(srv.getsockname())
conn, peer = srv.accept()
print(srv.getsockname()[1], cli.getsockname()[1], srv.fileno(), conn.fileno(), cli.fileno())
conn.close(); cli.close(); srv.close()
"""


@dataclass
class Workload:
    """What the workload did (the expectations)."""

    dir: Path
    binary: Path
    binary_pid: int = 0
    file_a: str = ""
    file_b: str = ""
    tcp: tuple[int, ...] = ()
    tcp_pid: int = 0
    sleeper_pid: int = 0
    sleeper_tag: str = ""


def _events(files: list[Path]) -> pa.Table:
    t = pa.concat_tables([pq.read_table(f) for f in files])
    return t.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_dictionary(f.type) else f
                             for f in t.schema]))


def _rows(t: pa.Table, **eq: object) -> list[dict]:
    mask = None
    for k, v in eq.items():
        m = pc.equal(t[k], pa.scalar(v, t.schema.field(k).type))
        mask = m if mask is None else pc.and_(mask, m)
    return t.filter(mask).to_pylist()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    tag = secrets.token_hex(4)
    wl = Workload(dir=tmp / f"work-{tag}", binary=tmp / f"work-{tag}" / f"fcap-true-{tag}")
    wl.dir.mkdir()
    shutil.copy("/bin/true", wl.binary)
    wl.sleeper_tag = f"fcap-sleeper-{tag}"
    # a process that exists before the recording starts
    sleeper = subprocess.Popen(["bash", "-c", f"exec -a {wl.sleeper_tag} sleep 30"])
    wl.sleeper_pid = sleeper.pid
    time.sleep(0.2)

    def workload() -> None:
        p = subprocess.run([f"./{wl.binary.name}", "arg-one", "arg two"], cwd=wl.dir,
                           check=True)  # fmt: skip
        assert p.returncode == 0
        wl.file_a, wl.file_b = f"a-{tag}", f"b-{tag}"
        subprocess.run(["sh", "-c", f": > {wl.file_a} && mv {wl.file_a} {wl.file_b} && "
                        f"rm {wl.file_b}"], cwd=wl.dir, check=True)  # fmt: skip
        t = subprocess.Popen([sys.executable, "-c", TCP_SCRIPT], stdout=subprocess.PIPE)
        out, _ = t.communicate(20)
        wl.tcp, wl.tcp_pid = tuple(int(x) for x in out.split()), t.pid
        subprocess.run(["kill", "-TERM", str(wl.sleeper_pid)], check=True)
        sleeper.wait(5)

    try:
        res = record_while(tmp / "cap.parquet", workload)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    return res, _events(res.files), wl


def test_capture_file_and_meta(recording) -> None:
    from fcap.capture.reader import open_capture

    res, ev, _ = recording
    assert len(res.files) == 1
    assert stat.S_IMODE(os.stat(res.files[0]).st_mode) == 0o600
    assert res.drops_total == 0
    assert ev.num_rows == res.events > 0
    meta = open_capture(res.files).meta[0]
    assert meta["events_written"] == res.events
    assert meta["drops_total"] == 0 and sum(meta["drops_per_cpu"]) == 0
    assert meta["shell_lost"] == res.shell_lost == 0
    assert "openat" in meta["syscalls"] and "execve" in meta["syscalls"]
    # the recorder never records itself
    mine = ev.filter(pc.equal(ev["pid"], os.getpid()))
    assert mine.num_rows == 0, mine.select(["tid", "comm", "syscall", "res"]).to_pylist()
    # time order within a CPU and plausible wall clock
    ts = ev["ts"].to_numpy()
    assert abs(int(ts.min()) - meta["start_ns"]) < 120e9


def test_exec_of_unique_binary(recording) -> None:
    _, ev, wl = recording
    rows = [r for r in _rows(ev, syscall="execve") if r["path"] == str(wl.binary)]
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["res"] == 0
    assert r["path_raw"] == f"./{wl.binary.name}"
    assert r["exe"] == str(wl.binary)
    assert r["argv"] == [f"./{wl.binary.name}", "arg-one", "arg two"]
    assert r["cwd"] == str(wl.dir)
    assert r["ppid"] == os.getpid()
    assert r["comm"] == wl.binary.name[:15]
    assert r["uid"] == os.getuid() and r["euid"] == os.geteuid()
    assert r["vpid"] == r["pid"]  # host pid namespace
    assert r["mntns"] == os.stat("/proc/self/ns/mnt").st_ino
    assert r["pidns"] == os.stat("/proc/self/ns/pid").st_ino
    assert r["netns"] == os.stat("/proc/self/ns/net").st_ino
    assert r["sid"] == os.getsid(0)
    pid = r["pid"]
    # the child side of the fork, before the exec, and its exit
    child = [c for c in ev.filter(pc.equal(ev["pid"], pid)).to_pylist()
             if c["syscall"] in ("clone", "clone3", "fork", "vfork") and c["res"] == 0]
    assert len(child) == 1 and child[0]["ts"] <= r["ts"]
    exits = _rows(ev, syscall="procexit", pid=pid)
    assert len(exits) == 1 and exits[0]["res"] == 0 and exits[0]["ts"] >= r["ts"]


def test_file_create_rename_delete(recording) -> None:
    _, ev, wl = recording
    a, b = str(wl.dir / wl.file_a), str(wl.dir / wl.file_b)
    created = [r for r in ev.filter(pc.equal(ev["path"], a)).to_pylist()
               if r["syscall"] in ("open", "openat", "creat")]
    assert len(created) == 1, created
    c = created[0]
    assert c["res"] >= 0 and c["fd"] == c["res"]
    assert c["path_raw"] == wl.file_a and c["cwd"] == str(wl.dir)
    assert c["a2"] & os.O_CREAT
    renamed = [r for r in ev.filter(pc.equal(ev["path"], a)).to_pylist()
               if r["syscall"] in ("rename", "renameat", "renameat2")]
    assert len(renamed) == 1, renamed
    assert renamed[0]["path2"] == b and renamed[0]["path2_raw"] == wl.file_b
    assert renamed[0]["res"] == 0 and renamed[0]["comm"] == "mv"
    deleted = [r for r in ev.filter(pc.equal(ev["path"], b)).to_pylist()
               if r["syscall"] in ("unlink", "unlinkat")]
    assert len(deleted) == 1 and deleted[0]["res"] == 0 and deleted[0]["comm"] == "rm"
    assert created[0]["ts"] < renamed[0]["ts"] < deleted[0]["ts"]


def test_tcp_connect_and_accept(recording) -> None:
    _, ev, wl = recording
    lport, cport, srv_fd, conn_fd, cli_fd = wl.tcp
    mine = ev.filter(pc.equal(ev["pid"], wl.tcp_pid))
    conn = _rows(mine, syscall="connect")
    assert len(conn) == 1, conn
    c = conn[0]
    assert (c["res"], c["fd"], c["sock_family"], c["l4proto"]) == (0, cli_fd, 2, 6)
    assert (c["raddr"], c["rport"], c["laddr"], c["lport"]) == ("127.0.0.1", lport, "127.0.0.1", cport)
    acc = [r for r in mine.to_pylist() if r["syscall"] in ("accept", "accept4")]
    assert len(acc) == 1, acc
    a = acc[0]
    assert a["res"] == conn_fd and a["fd"] == conn_fd and a["sock_family"] == 2
    assert (a["laddr"], a["lport"], a["raddr"], a["rport"]) == ("127.0.0.1", lport, "127.0.0.1", cport)
    assert a["ts"] > c["ts"] or a["cpu"] != c["cpu"]
    lis = _rows(mine, syscall="listen")
    assert len(lis) == 1 and lis[0]["fd"] == srv_fd and lis[0]["lport"] == lport
    bind = _rows(mine, syscall="bind")
    assert len(bind) == 1 and bind[0]["laddr"] == "127.0.0.1" and bind[0]["fd"] == srv_fd
    sock = _rows(mine, syscall="socket")
    assert {r["fd"] for r in sock} >= {srv_fd, cli_fd}
    assert all(r["sock_family"] == 2 and r["sock_type"] == 1 for r in sock)


def test_process_from_before_the_recording(recording) -> None:
    from fcap.capture.reader import open_capture

    res, ev, wl = recording
    procs = open_capture(res.files).side_table("processes")
    row = procs.filter(pc.equal(procs["pid"], wl.sleeper_pid)).to_pylist()
    assert len(row) == 1
    assert row[0]["argv"] == [wl.sleeper_tag, "30"]
    assert row[0]["ppid"] == os.getpid()
    # killed during the recording: the kill syscall and its exit status
    kills = [r for r in _rows(ev, syscall="kill") if r["a0"] == wl.sleeper_pid]
    assert len(kills) == 1 and kills[0]["a1"] == signal.SIGTERM and kills[0]["comm"] == "kill"
    ex = _rows(ev, syscall="procexit", pid=wl.sleeper_pid)
    assert len(ex) == 1 and ex[0]["res"] == signal.SIGTERM  # wait status: killed by SIGTERM


@pytest.mark.container
def test_runc_container_with_kubernetes_metadata(tmp_path) -> None:
    from fcap.capture.reader import open_capture
    from fcap.capture.runc import RuncContainer

    tag = secrets.token_hex(4)
    with RuncContainer(pod_name=f"pod-{tag}", namespace="fcap-live", container_name="box") as c:
        init = c.start(["sleep", "60"])
        done: list[object] = []

        def work() -> None:
            done.append(c.exec(["sh", "-c", f"cd /etc && cat shadow >/dev/null && "
                                f"echo x > /tmp/f-{tag}"]))  # fmt: skip

        res = record_while(tmp_path / "c.parquet", work)
    assert done and done[0].returncode == 0
    ev = _events(res.files)
    inside = ev.filter(pc.equal(ev["container_id"], c.id))
    opens = [r for r in inside.to_pylist() if r["syscall"] in ("open", "openat")
             and r["path"] == "/etc/shadow"]
    assert len(opens) == 1, opens
    o = opens[0]
    assert o["path_raw"] == "shadow" and o["cwd"] == "/etc" and o["comm"] == "cat"
    assert o["res"] >= 0 and o["vpid"] != o["pid"] and o["pidns"] != os.stat("/proc/self/ns/pid").st_ino
    assert o["mntns"] != os.stat("/proc/self/ns/mnt").st_ino
    created = [r for r in inside.to_pylist() if r["path"] == f"/tmp/f-{tag}"]
    assert len(created) == 1 and created[0]["a2"] & os.O_CREAT
    cap = open_capture(res.files)
    ct = cap.side_table("containers")
    row = ct.filter(pc.equal(ct["id"], c.id)).to_pylist()
    assert len(row) == 1
    r = row[0]
    assert (r["name"], r["pod_name"], r["pod_namespace"], r["pod_uid"], r["pid"]) == (
        "box", f"pod-{tag}", "fcap-live", c.pod_uid, init)
    assert r["cgroup"] == c.cgroups_path


def test_cli_record_and_bad_output(tmp_path) -> None:
    out = tmp_path / "cli.parquet"
    tag = secrets.token_hex(4)
    binary = tmp_path / f"fcap-cli-{tag}"
    shutil.copy("/bin/true", binary)
    proc = subprocess.Popen([str(REPO / ".venv/bin/fcap"), "record", "-o", str(out), "-q",
                             "--no-shell", "--syscalls", "execve,procexit", "-d", "30"],
                            stderr=subprocess.PIPE)  # fmt: skip
    # wait for the journal (probes attached, snapshot taken), then run the workload
    journal = Path(str(out) + ".partial")
    for _ in range(300):
        if journal.exists():
            break
        time.sleep(0.1)
    assert journal.exists()
    subprocess.run([str(binary), "x"], check=True)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(30)
    assert proc.returncode == 0, err
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    ev = _events([out])
    assert set(pc.unique(ev["syscall"]).to_pylist()) <= {"execve", "procexit"}
    rows = [r for r in _rows(ev, syscall="execve") if r["path"] == str(binary)]
    assert len(rows) == 1 and rows[0]["argv"] == [str(binary), "x"]
    # an output that cannot be written fails before any probe loads, exit code 2
    bad = subprocess.run([str(REPO / ".venv/bin/fcap"), "record", "-o",
                          str(tmp_path / "missing-dir" / "x.parquet"), "-d", "1"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr
    assert not (tmp_path / "missing-dir").exists()

