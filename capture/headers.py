"""The record header layout, its column view, and the decoder's reused memory.

``struct fcap_event`` (bpf/fcap_event.h) is mirrored by :data:`EVENT_DTYPE`
(checked by tests/test_bpf_layout.py). :class:`HeaderColumns` gathers the
272-byte headers of a batch and transposes them, block by block, into 34
contiguous rows of 64-bit words (one row per 8 header bytes); every field is
then a zero-copy strided view of one row (a 4-byte field is every other
32-bit half of its word row), so no field costs a pass of its own.

Memory: a batch's temporaries come from a :class:`Workspace`, grow-only
buffers kept from batch to batch, so their pages are faulted in once per
recording instead of once per batch (fresh memory costs the kernel a page
fault and a page clear per 4 KiB; at a million events/s that was half of the
recorder's CPU). Arrays handed to Arrow must own their memory: :func:`owned`
and :func:`column` copy into buffers of Arrow's memory pool (mimalloc, which
keeps its pages mapped), never into workspace memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from fcap.capture.ringbuf import Records

NSLOTS = 10

EVENT_DTYPE = np.dtype(
    [
        ("magic", "<u4"), ("kind", "<u2"), ("nr", "<u2"), ("ts", "<u8"), ("cgroup_id", "<u8"),
        ("res", "<i8"), ("args", "<u8", (6,)), ("fd", "<i8"), ("flags_aux", "<i8"),
        ("pid", "<u4"), ("tid", "<u4"), ("ppid", "<u4"), ("vpid", "<u4"), ("vtid", "<u4"),
        ("uid", "<u4"), ("gid", "<u4"), ("euid", "<u4"), ("egid", "<u4"), ("loginuid", "<u4"),
        ("tty", "<u4"), ("sid", "<i4"), ("pgid", "<i4"),
        ("mntns", "<u4"), ("pidns", "<u4"), ("netns", "<u4"),
        ("cpu", "<u2"), ("sock_family", "<u2"), ("sock_type", "<u2"), ("l4proto", "<u2"),
        ("lport", "<u2"), ("rport", "<u2"), ("dflags", "<u2"), ("pad0", "<u2"),
        ("laddr", "u1", (16,)), ("raddr", "u1", (16,)), ("comm", "S16"),
        ("slen", "<u2", (NSLOTS,)), ("pad1", "<u2", (2,)),
        ("cap_permitted", "<u8"), ("cap_inheritable", "<u8"), ("cap_effective", "<u8"),
    ]
)  # fmt: skip
assert EVENT_DTYPE.itemsize == 272
WORDS = EVENT_DTYPE.itemsize // 8


class Workspace:
    """Named grow-only scratch buffers reused from batch to batch.

    :meth:`get` returns an uninitialized array over the named buffer; the
    array returned earlier under the same name is then overwritten. Nothing
    from a workspace may end up in a decoded batch (copy with :func:`owned`).
    Not thread-safe: one workspace per decoding thread.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: int | tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else shape
        nbytes = int(np.prod(shape)) * dtype.itemsize
        buf = self._bufs.get(name)
        if buf is None or len(buf) < nbytes:
            grown = 0 if buf is None else len(buf) + len(buf) // 2
            buf = np.empty(max(nbytes, grown, 4096), np.uint8)
            self._bufs[name] = buf
        return buf[:nbytes].view(dtype).reshape(shape)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(len(b) for b in self._bufs.values())


def alloc(n: int, dtype: np.dtype | type) -> tuple[pa.Buffer, np.ndarray]:
    """A buffer of Arrow's memory pool for ``n`` values, and a writable numpy view of it."""
    dtype = np.dtype(dtype)
    buf = pa.allocate_buffer(n * dtype.itemsize)
    return buf, np.frombuffer(buf, dtype, count=n)


def wrap(buf: pa.Buffer, n: int, typ: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """An Arrow array over ``buf``; rows where ``mask`` is true are null."""
    validity, nulls = None, 0
    if mask is not None:
        nulls = int(np.count_nonzero(mask))
        if nulls:
            validity = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    return pa.Array.from_buffers(typ, n, [validity, buf], null_count=nulls)


def owned(arr: np.ndarray, mask: np.ndarray | None = None, dtype: np.dtype | type | None = None,
          typ: pa.DataType | None = None) -> pa.Array:
    """An Arrow array owning a copy of ``arr`` (cast to ``dtype``), nulls where ``mask``."""
    dtype = np.dtype(dtype or arr.dtype)
    buf, view = alloc(len(arr), dtype)
    np.copyto(view, arr, casting="unsafe")
    return wrap(buf, len(arr), typ or pa.from_numpy_dtype(dtype), mask)


class HeaderColumns:
    """Column access to the record headers, ``hdr["pid"]`` like a structured array.

    The headers are gathered and transposed in one blocked pass straight from
    the copied ring bytes into 34 contiguous rows of 64-bit words (one row per
    8 header bytes); the gathered row-wise block stays in cache. Scalar fields
    are strided views of their word row (no copy): they are valid until the
    workspace is reused and must be copied (:func:`owned`) before they go into
    a batch.
    """

    BLOCK = 1024  # records per gather+transpose step: 272 KiB, stays in L2

    def __init__(self, recs: Records, work: Workspace | None = None) -> None:
        self.work = work = work if work is not None else Workspace()
        self.n = n = len(recs.starts)
        buf = recs.buf
        need = int(recs.starts.max()) + EVENT_DTYPE.itemsize if n else 0
        if len(buf) < need or len(buf) % 8:
            full = work.get("padded", -(-max(need, len(buf)) // 8) * 8, np.uint8)
            full[len(buf) :] = 0
            full[: len(buf)] = buf
            buf = full
        win = np.lib.stride_tricks.sliding_window_view(buf.view(np.uint64), WORDS)
        idx = recs.starts // 8
        self.w64 = w64 = work.get("w64", (WORDS, n), np.uint64)
        for i in range(0, n, self.BLOCK):  # (np.take would copy the whole window view first)
            w64[:, i : i + self.BLOCK] = win[idx[i : i + self.BLOCK]].T

    def __len__(self) -> int:
        return self.n

    def word32(self, k: int) -> np.ndarray:
        """The 32-bit little-endian word ``k`` of every header (a strided view)."""
        return self.w64[k >> 1].view(np.uint32)[k & 1 :: 2]

    def __getitem__(self, name: str) -> np.ndarray:
        """A scalar field as a strided view of its word row (no copy)."""
        ftype, off = EVENT_DTYPE.fields[name][:2]
        size = ftype.itemsize
        if ftype.shape or off // 8 != (off + size - 1) // 8:
            raise KeyError(f"{name} is not a scalar field within one word")
        row = self.w64[off // 8].view(ftype)
        return row[(off % 8) // size :: 8 // size]

    def bytes_field(self, name: str) -> np.ndarray:
        """A multi-word field (laddr, raddr, comm...) as an (n, size) uint8 array (a copy)."""
        ftype, off = EVENT_DTYPE.fields[name][:2]
        assert off % 8 == 0 and ftype.itemsize % 8 == 0, name
        k, m = off // 8, ftype.itemsize // 8
        out = np.empty((self.n, m), np.uint64)
        for i in range(m):
            out[:, i] = self.w64[k + i]
        return out.view(np.uint8)

    def arg(self, i: int) -> np.ndarray:
        """Raw syscall argument ``i`` (int64 column view)."""
        return self.w64[EVENT_DTYPE.fields["args"][1] // 8 + i].view(np.int64)
