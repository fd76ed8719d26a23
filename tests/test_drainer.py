"""Ring draining into reused chunks, and decoding with reused scratch memory.

The ring here is a numpy imitation of a BPF ring buffer mapping (consumer and
producer positions, data area mapped twice in a row), fed with records built
in the layout of bpf/fcap_event.h by tests/test_decode.py's ``rec``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from fcap.capture import decode as d
from fcap.capture import drainer as dr
from fcap.capture.headers import Workspace
from fcap.capture.ringbuf import RingBuffer, find_records
from fcap.capture.syscall_table import SYSCALL_NR as NR

from tests.test_decode import buf, rec


class FakeRing(RingBuffer):
    """A RingBuffer over numpy memory: ``produce`` appends records at the producer position."""

    def __init__(self, size: int) -> None:  # no map fd: the fields drain() uses
        self.size, self.mask = size, size - 1
        self._cons = np.zeros(1, np.uint64)
        self._prod = np.zeros(1, np.uint64)
        self._data = np.zeros(2 * size, np.uint8)  # the double mapping, kept in sync below

    def produce(self, *records: bytes) -> None:
        raw = b"".join(records)
        prod = int(self._prod[0])
        assert prod + len(raw) - int(self._cons[0]) <= self.size, "fake ring full"
        for i, byte in enumerate(np.frombuffer(raw, np.uint8)):
            pos = (prod + i) & self.mask
            self._data[pos] = self._data[pos + self.size] = byte
        self._prod[0] = prod + len(raw)

    def close(self) -> None:
        pass


def _openat(i: int, path: str | None = None) -> bytes:
    p = (path or f"/data/file-{i}").encode() + b"\0"
    return rec(nr=NR["openat"], ts=i, pid=1000 + i, tid=1000 + i, res=3, fd=3,
               slots={d.S_PATH: p})  # fmt: skip


def _rows(batch: pa.RecordBatch) -> list[tuple]:
    t = pa.Table.from_batches([batch])
    return list(zip(t.column("ts").to_pylist(), t.column("pid").to_pylist(),
                    t.column("path").to_pylist(), t.column("a0").to_pylist(), strict=True))


def test_ring_drain_into_given_memory_consumes_complete_records_only() -> None:
    ring = FakeRing(8192)
    a, b = _openat(1), _openat(2)
    ring.produce(a, b)
    out = np.full(len(a) + 40, 0xEE, np.uint8)  # room for one record and a bit
    recs = ring.drain(out=out)
    assert recs.consumed == len(a) and len(recs.starts) == 1
    assert np.shares_memory(recs.buf, out)
    assert int(ring._cons[0]) == len(a) and ring.pending() == len(b)
    rest = ring.drain()
    assert len(rest.starts) == 1 and ring.pending() == 0


def test_ring_drain_across_the_wraparound() -> None:
    ring = FakeRing(4096)
    recs = [_openat(i) for i in range(40)]
    seen = []
    for i in range(0, 40, 4):  # the producer wraps several times; the reader follows
        ring.produce(*recs[i : i + 4])
        got = ring.drain(out=np.empty(4096, np.uint8))
        seen += d.decode(got, boot_offset_ns=0).column("pid").to_pylist()
    assert seen == [1000 + i for i in range(40)]


@pytest.mark.parametrize("min_room", [dr.MIN_ROOM, 512])
def test_drainer_chunks_hold_the_batches_in_order_and_are_reused(monkeypatch, min_room) -> None:
    """Small chunks: several per take; a small MIN_ROOM: a drain fills a chunk and goes on."""
    monkeypatch.setattr(dr, "MIN_ROOM", min_room)
    ring = FakeRing(1 << 16)
    drain = dr.Drainer([ring], poll_s=1.0)
    work = Workspace()
    batches, buffers = [], set()
    for round_ in range(6):
        if round_ == 3:
            drain.chunk_bytes = 4096  # small chunks from now on: several per take
            drain._spare.clear()
        for i in range(round_ * 30, round_ * 30 + 30, 5):
            ring.produce(*[_openat(j) for j in range(i, i + 5)])
            drain.drain_once()
        parts = drain.take()
        assert sum(len(p.starts) for p in parts) == 30
        assert len(parts) == 1 if round_ < 3 else len(parts) > 1
        if round_ < 3:
            buffers.add(parts[0].buf.__array_interface__["data"][0])
        for p in parts:
            batches.append(d.decode(p, boot_offset_ns=0, work=work))
        drain.release(parts)
    rows = [r for b in batches for r in _rows(b)]
    assert [r[1] for r in rows] == [1000 + i for i in range(180)]
    assert [r[2] for r in rows] == [f"/data/file-{i}" for i in range(180)]
    assert len(buffers) == 1  # one chunk at a time: taken, released, filled again
    if min_room < 4096:  # chunks were filled to (nearly) their end
        assert max(len(p.buf) for p in parts) > 4096 - min_room


def test_consecutive_batches_do_not_alias_reused_memory() -> None:
    """A decoded batch owns its memory: reusing the chunk and the workspace leaves it intact."""
    ring = FakeRing(1 << 16)
    drain = dr.Drainer([ring], poll_s=1.0)
    work = Workspace()
    ring.produce(*[_openat(i, f"/first/{i}") for i in range(50)])
    drain.drain_once()
    parts1 = drain.take()
    first = d.decode(parts1[0], boot_offset_ns=7, work=work)
    expect = _rows(first)
    assert expect[0] == (7, 1000, "/first/0", 0)
    drain.release(parts1)
    # the same chunk and workspace arrays are overwritten by a different batch
    ring.produce(*[rec(nr=NR["close"], ts=10**9 + i, pid=9, tid=9, res=-1, fd=-1,
                       args=[2**40 + i, 0, 0, 0, 0, 0]) for i in range(50)])  # fmt: skip
    drain.drain_once()
    parts2 = drain.take()
    assert parts2[0].buf.__array_interface__["data"][0] == \
        parts1[0].buf.__array_interface__["data"][0]  # the chunk was reused
    second = d.decode(parts2[0], boot_offset_ns=7, work=work)
    parts2[0].buf[:] = 0xAB  # and scribbled over
    assert _rows(first) == expect
    assert _rows(second)[0] == (10**9 + 7, 9, None, 2**40)
    first.validate(full=True)


def test_decode_with_and_without_workspace_is_identical() -> None:
    records = [_openat(i) for i in range(30)] + [
        rec(nr=NR["connect"], ts=99, pid=5, sock_family=2, sock_type=1, l4proto=6,
            lport=1234, rport=80, laddr=[127, 0, 0, 1] + [0] * 12,
            raddr=[10, 0, 0, 2] + [0] * 12),
        rec(nr=NR["execve"], kind=d.K_EXEC, ts=100, pid=6, comm=b"0123456789abcdef",
            slots={d.S_PATH: b"./run\0", d.S_CWD: b"/srv\0", d.S_ARGV: b"run\0-x\0"}),
    ]  # fmt: skip
    work = Workspace()
    d.decode(find_records(buf(*[_openat(i, "/x" * 40) for i in range(300)])),
             boot_offset_ns=0, work=work)  # larger scratch arrays first
    a = d.decode(find_records(buf(*records)), boot_offset_ns=3)
    b = d.decode(find_records(buf(*records)), boot_offset_ns=3, work=work)
    assert a.equals(b)
    last = b.slice(b.num_rows - 2).to_pylist()
    assert last[0]["laddr"] == "127.0.0.1" and last[0]["rport"] == 80
    assert last[1]["path"] == "/srv/run" and last[1]["comm"] == "0123456789abcdef"


def test_drainer_memory_bound_stops_copying() -> None:
    ring = FakeRing(1 << 16)
    drain = dr.Drainer([ring], poll_s=1.0, max_bytes=1)
    ring.produce(_openat(1))
    drain.drain_once()
    ring.produce(_openat(2))
    drain.drain_once()  # above the bound: left in the ring (the kernel would count drops)
    assert drain.pending_rows == 1 and ring.pending() > 0
    parts = drain.take()
    drain.release(parts)
    drain.drain_once()
    assert drain.pending_rows == 1 and ring.pending() == 0


@pytest.mark.parametrize("fields", [{"kind": 3}, {"comm": b"\xff\xfe\0"}])
def test_header_field_views_match_the_structured_dtype(fields: dict) -> None:
    from fcap.capture.headers import EVENT_DTYPE, HeaderColumns

    records = [rec(nr=i, ts=i * 3, pid=i, uid=2**32 - 1 - i, sid=-i, lport=i, dflags=i % 16,
                   cpu=i % 4, **fields) for i in range(20)]  # fmt: skip
    found = find_records(buf(*records))
    hdr = HeaderColumns(found)
    raw = buf(*records)
    starts = found.starts
    size = EVENT_DTYPE.itemsize
    full = np.stack([raw[s : s + size] for s in starts]).copy().view(EVENT_DTYPE).ravel()
    for name in EVENT_DTYPE.names:
        ftype = EVENT_DTYPE.fields[name][0]
        if ftype.shape or ftype.kind == "S" or name == "args":
            continue
        assert (hdr[name] == full[name]).all(), name
    assert (np.stack([hdr.arg(i) for i in range(6)], 1) == full["args"].view(np.int64)).all()
    assert (hdr.bytes_field("laddr") == full["laddr"]).all()
