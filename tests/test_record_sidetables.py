"""The recorder's userspace glue, without BPF: side tables of containers that
appear while recording, and the shell probe's batches (filters, container ids,
losses). Runtime state and the cgroup tree are built in a temporary directory
(a runc state dir, an OCI rootfs with /etc/passwd, cgroup directories whose
inode numbers are the cgroup ids), so every expectation comes from here.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fcap.capture.containers import ContainerResolver
from fcap.capture.filters import Filters
from fcap.capture.reader import open_capture
from fcap.capture.recorder import Recorder, RecordOptions
from fcap.capture.ringbuf import find_records
from fcap.capture.syscall_table import SYSCALL_NR
from fcap.capture.writer import CaptureWriter

from fcap.schema import EVENTS
from tests.test_decode import buf, rec


class Host:
    """A fake host: runc state root, cgroup2 root, container rootfs."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runc = tmp / "runc"
        self.cg = tmp / "cg"
        self.runc.mkdir()
        (self.cg / "system.slice").mkdir(parents=True)

    def add_container(self, user: str) -> tuple[str, int]:
        """A running container (state dir, rootfs, cgroup); returns (id, cgroup id)."""
        cid = secrets.token_hex(32)
        rootfs = self.tmp / f"rootfs-{cid[:8]}"
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "etc/passwd").write_text(f"root:x:0:0:root:/root:/bin/sh\n"
                                           f"{user}:x:4242:4242::/home/{user}:/bin/sh\n")
        (rootfs / "etc/group").write_text(f"root:x:0:\n{user}:x:4242:\n")
        cgpath = f"/kubepods/besteffort/pod{secrets.token_hex(4)}/{cid}"
        cgdir = self.cg / cgpath.lstrip("/")
        cgdir.mkdir(parents=True)
        state = {"id": cid, "init_process_pid": 4242, "created": "2026-11-22T20:00:00Z",
                 "config": {"rootfs": str(rootfs), "cgroups": {"path": cgpath}, "labels": []}}
        (self.runc / cid).mkdir()
        (self.runc / cid / "state.json").write_text(json.dumps(state))
        return cid, os.stat(cgdir).st_ino

    def remove_container(self, cid: str) -> None:
        """runc delete: the state dir goes (the cgroup directory may stay a while)."""
        (self.runc / cid / "state.json").unlink()
        (self.runc / cid).rmdir()


def _recorder(tmp: Path, host: Host, filters: Filters = Filters()) -> Recorder:
    r = Recorder(RecordOptions(output=tmp / "out.parquet", syscalls=("openat",), filters=filters))
    r.resolver = ContainerResolver(roots=(str(host.runc),), cgroup_root=host.cg,
                                   min_rescan_interval=0.25)
    r.resolver.new_cgroups()
    tables = {"containers": r.resolver.table(), "cgroups": r.resolver.index.table()}
    r.writer = CaptureWriter(tmp / "out.parquet", meta={"fcap_version": "test"},
                             side_tables=tables)
    return r


def _openat(cgroup_id: int, pid: int = 77) -> bytes:
    return rec(nr=SYSCALL_NR["openat"], pid=pid, tid=pid, cgroup_id=cgroup_id, res=3,
               ts=1000, slots={0: b"/etc/passwd\0"})


def test_container_seen_in_a_batch_reaches_the_side_tables(tmp_path: Path) -> None:
    host = Host(tmp_path)
    r = _recorder(tmp_path, host)
    r._side_tables()  # the periodic poll ran just before the container appeared
    cid, cgid = host.add_container("appuser")
    time.sleep(0.3)  # > the rescan rate limit
    # its first events arrive and are decoded: the unknown cgroup id triggers the rescan
    n = r._decode_write([find_records(buf(_openat(cgid)))])
    assert n == 1
    host.remove_container(cid)  # gone before the next periodic poll
    r._side_tables()
    files = r.writer.close()
    cap = open_capture(files)
    assert cap.side_table("containers").column("id").to_pylist() == [cid]
    assert cgid in cap.side_table("cgroups").column("id").to_pylist()
    users = cap.side_table("users").to_pylist()
    assert {(u["name"], u["uid"], u["container_id"]) for u in users} >= {("appuser", 4242, cid)}
    groups = cap.side_table("groups").to_pylist()
    assert ("appuser", cid) in {(g["name"], g["container_id"]) for g in groups}
    import duckdb

    con = duckdb.connect()
    cap.attach(con)
    assert con.sql("select container_id from raw_events").fetchall() == [(cid,)]


def test_final_scan_at_stop_ignores_the_rate_limit(tmp_path: Path) -> None:
    host = Host(tmp_path)
    r = _recorder(tmp_path, host)
    r._side_tables()
    cid, _ = host.add_container("late")
    r._side_tables()  # within the rate limit: not rescanned yet
    r._side_tables(force=True)  # the stop-time scan
    files = r.writer.close()
    assert open_capture(files).side_table("containers").column("id").to_pylist() == [cid]


def test_a_vanished_cgroup_does_not_rescan_every_batch(tmp_path: Path, monkeypatch) -> None:
    host = Host(tmp_path)
    r = _recorder(tmp_path, host)
    calls: list[int] = []
    poll = r._side_tables
    monkeypatch.setattr(r, "_side_tables", lambda **kw: (calls.append(1), poll(**kw)))
    gone = np.array([987654321, 987654321], np.uint64)  # a cgroup removed before any scan
    for _ in range(3):
        time.sleep(0.3)  # > the rescan rate limit
        assert r._container_ids(gone).null_count == 2
    assert len(calls) == 1
    r.writer.close()


def _shell_batch(rows: list[dict]) -> pa.RecordBatch:
    cols = {f.name: [row.get(f.name) for row in rows] for f in EVENTS}
    return pa.RecordBatch.from_pydict(cols, schema=EVENTS)


def _line(pid: int, comm: str, cgroup_id: int, text: str) -> dict:
    return {"ts": 1, "cpu": 0, "pid": pid, "tid": pid, "comm": comm, "cgroup_id": cgroup_id,
            "syscall": "shell_line", "text": text}


class FakeShell:
    def __init__(self, batch: pa.RecordBatch | None, lost: int = 0) -> None:
        self.batch, self.lost = batch, lost

    def drain(self) -> pa.RecordBatch | None:
        b, self.batch = self.batch, None
        return b


@pytest.mark.parametrize("filters, expect", [
    (Filters(), {"a", "b", "c"}),
    (Filters(comms=("bash",)), {"a", "c"}),
    (Filters(exclude_comms=("bash",)), {"b"}),
    (Filters(pids=(10,)), {"a"}),
    (Filters(containers=("CID",)), {"c"}),
])  # fmt: skip
def test_shell_lines_pass_the_record_filters_and_get_container_ids(
        tmp_path: Path, filters: Filters, expect: set[str]) -> None:
    host = Host(tmp_path)
    cid, cgid = host.add_container("u")
    if filters.containers:
        filters = Filters(containers=(cid[:12],))
    r = _recorder(tmp_path, host, filters)
    if filters.containers:
        r._cg_filter = {cgid}
    host_cg = os.stat(host.cg / "system.slice").st_ino

    class Tracked:  # the kernel's --pid map: 10 and its child 11 are tracked
        @staticmethod
        def tracked(pids):
            return {p for p in pids if p in (10, 11)} if filters.pids else set(pids)

    r.probe = Tracked()
    r.shell = FakeShell(_shell_batch([_line(10, "bash", host_cg, "a"),
                                      _line(20, "sh", host_cg, "b"),
                                      _line(30, "bash", cgid, "c")]))
    r._drain_shell()
    files = r.writer.close()
    import pyarrow.parquet as pq

    t = pq.read_table(files[0]).to_pylist()
    assert {row["text"] for row in t} == expect
    for row in t:
        assert row["container_id"] == (cid if row["cgroup_id"] == cgid else None)


def test_shell_losses_are_counted_as_drops(tmp_path: Path) -> None:
    host = Host(tmp_path)
    r = _recorder(tmp_path, host)

    class Probe:
        @staticmethod
        def drops_per_cpu() -> list[int]:
            return [1, 2]

    r.probe = Probe()
    r.shell = FakeShell(None, lost=5)
    assert r._drops_per_cpu() == [6, 2]
    r.writer.set_stats(events_written=0, drops_per_cpu=r._drops_per_cpu(), end_ns=2)
    meta = open_capture(r.writer.close()).meta[0]
    assert meta["drops_total"] == 8
