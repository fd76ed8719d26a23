"""Decode shell-probe records into ``shell_line`` rows (pure: no bcc, no root).

``bpf/shell.c`` emits variable-length ``struct shell_rec`` records (layout in
``bpf/shell.h``, mirrored by :data:`REC_DTYPE`). This module turns a batch of
them into :data:`fcap.schema.EVENTS` rows:

* ``SHELL_K_READLINE`` records are complete lines (bash's ``readline()``);
* ``SHELL_K_TTYREAD`` records are the bytes a shell read from its terminal.
  They are concatenated per stream (pid, terminal) and cut at ``\\n``/``\\r``;
  positions are found with numpy over the concatenated bytes, and the chunk
  that ended a line (``np.searchsorted`` over cumulative lengths) gives the
  line's time, pid, tty, ... In raw mode (line editors such as busybox ash's)
  the bytes are keystrokes: :func:`apply_keystrokes` replays erase/kill/word
  erase, drops cursor-movement escape sequences and marks the line
  approximate (:data:`FLAG_APPROX`) when keys it cannot replay (arrows, tab
  completion, history) were pressed;
* ``SHELL_K_WITHHELD`` records (ECHO off) carry no bytes at all; the reads of
  one withheld line collapse into a single ``shell_line_withheld`` row, emitted
  at the read that ended the line.

Per-record work is numpy (headers) and one ``bytes`` slice per record; Python
loops run per stream and per line, never per syscall of the traced system
(records only exist for shells reading their terminal: human typing rate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from fcap.schema import EVENTS, SHELL_LINE, SHELL_LINE_WITHHELD

HEADER = Path(__file__).resolve().parent.parent / "bpf" / "shell.h"

K_READLINE, K_TTYREAD, K_WITHHELD, K_EXEC = 1, 2, 3, 4
F_ICANON, F_ECHO, F_TRUNC, F_EOL, F_HAVE_TTY = 1, 2, 4, 8, 16

#: ``flags_aux`` bits of ``shell_line`` rows (fcap extension, docs/sessions.md).
FLAG_READLINE = 1  # the line came from readline() (bash)
FLAG_CANONICAL = 2  # the line came from a canonical-mode terminal read (dash, ash `read`)
FLAG_KEYSTROKES = 4  # rebuilt from raw-mode keystrokes (busybox ash line editing ...)
FLAG_APPROX = 8  # keystrokes included keys fcap cannot replay (arrows, tab, history)
FLAG_TRUNCATED = 16  # the line was longer than the probe copies (4095 bytes)

MAX_PENDING = 65536  # bytes kept per stream for an unfinished line

REC_DTYPE = np.dtype(
    [
        ("ts", "<u8"),
        ("cgroup_id", "<u8"),
        ("pid", "<u4"),
        ("tid", "<u4"),
        ("ppid", "<u4"),
        ("uid", "<u4"),
        ("gid", "<u4"),
        ("loginuid", "<u4"),
        ("sid", "<u4"),
        ("pgid", "<u4"),
        ("tty", "<u4"),
        ("len", "<u4"),
        ("tty_lflag", "<u4"),
        ("cpu", "<u2"),
        ("kind", "u1"),
        ("flags", "u1"),
        ("comm", "S16"),
    ]
)
HDR_SIZE = REC_DTYPE.itemsize

_CSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?", re.S)
_CPR = re.compile(rb"\x1b\[\d+;\d+R")


def header_layout() -> tuple[list[tuple[str, str]], int]:
    """The ``struct shell_rec`` members (name, C type) before ``data`` and
    ``SHELL_HDR_SIZE``, parsed from ``bpf/shell.h`` (for the layout test)."""
    text = HEADER.read_text()
    body = text[text.index("struct shell_rec {") : text.index("};", text.index("struct shell_rec {"))]
    members = re.findall(r"^\s+((?:unsigned )?(?:long long|int|short|char))\s+(\w+)", body, re.M)
    hdr = int(re.search(r"#define SHELL_HDR_SIZE (\d+)", text).group(1))
    return [(name, ctype) for ctype, name in members if name != "data"], hdr


def encode_tty(kdev: np.ndarray) -> np.ndarray:
    """Kernel ``dev_t`` (major << 20 | minor) -> the schema's ``new_encode_dev``."""
    kdev = kdev.astype(np.uint32)
    major, minor = kdev >> 20, kdev & 0xFFFFF
    return (minor & 0xFF) | (major << 8) | ((minor & ~np.uint32(0xFF)) << 12)


def apply_keystrokes(raw: bytes) -> tuple[str, bool]:
    """Replay the editing keys of a raw-mode line; return (text, approximate)."""
    approx = False
    out = bytearray()
    pos = 0
    while pos < len(raw):
        c = raw[pos]
        if c == 0x1B:  # escape sequence: cursor keys, history, Home/End ...
            m = _CSI.match(raw, pos)
            end = m.end() if m else pos + 1
            # a terminal's cursor-position report (ESC [ row ; col R, the answer to
            # the ESC [ 6n busybox sends with each prompt) is not a key press
            if not _CPR.fullmatch(raw, pos, end):
                approx = True
            pos = end
            continue
        if c in (0x7F, 0x08):  # erase one character (with its UTF-8 continuation bytes)
            while out and (out[-1] & 0xC0) == 0x80:
                out.pop()
            if out:
                out.pop()
        elif c == 0x15:  # ^U kill line
            out.clear()
        elif c == 0x17:  # ^W erase word
            while out and out[-1] in b" \t":
                out.pop()
            while out and out[-1] not in b" \t":
                out.pop()
        elif c == 0x09:  # tab: the shell completed something we cannot see
            approx = True
        elif c < 0x20:
            if c not in (0x04,):
                approx = True
        else:
            out.append(c)
        pos += 1
    return out.decode("utf-8", "replace"), approx


def split_records(blobs: list[bytes]) -> tuple[np.ndarray, list[bytes]]:
    """Headers of raw ring-buffer records as a structured array, plus their data bytes."""
    if not blobs:
        return np.zeros(0, REC_DTYPE), []
    heads = np.frombuffer(b"".join(b[:HDR_SIZE] for b in blobs), REC_DTYPE)
    data = [b[HDR_SIZE : HDR_SIZE + int(n)] for b, n in zip(blobs, heads["len"], strict=True)]
    return heads, data


@dataclass
class _Stream:
    pending: bytes = b""
    raw: bool = False  # some pending bytes came from a raw-mode read
    trunc: bool = False


@dataclass
class LineAssembler:
    """Stateful across drains: unfinished lines wait for their terminator."""

    wall_offset_ns: int = 0  # CLOCK_REALTIME - CLOCK_BOOTTIME at start
    streams: dict[tuple[int, int], _Stream] = field(default_factory=dict)
    withheld_open: set[tuple[int, int]] = field(default_factory=set)

    def feed(self, heads: np.ndarray, data: list[bytes]) -> pa.RecordBatch | None:
        """Turn one batch of records into EVENTS rows (None when no line finished)."""
        rows: list[tuple[int, str | None, int, str]] = []  # (record index, text, flags, type)
        order = np.argsort(heads["ts"], kind="stable")
        kind = heads["kind"]
        for i in order[kind[order] == K_READLINE]:
            trunc = FLAG_TRUNCATED if heads["flags"][i] & F_TRUNC else 0
            text = data[i].decode("utf-8", "replace")
            if text.strip():
                rows.append((int(i), text, FLAG_READLINE | trunc, SHELL_LINE))
        wh = order[kind[order] == K_WITHHELD]
        for i in wh:
            key = (int(heads["pid"][i]), int(heads["tty"][i]))
            if heads["flags"][i] & F_EOL:
                rows.append((int(i), None, 0, SHELL_LINE_WITHHELD))
                self.withheld_open.discard(key)
                self.streams.pop(key, None)  # bytes typed before the prompt are not the secret's
            else:
                self.withheld_open.add(key)
        rows += self._tty_lines(heads, data, order[kind[order] == K_TTYREAD])
        if not rows:
            return None
        rows.sort(key=lambda r: int(heads["ts"][r[0]]))
        return self._batch(heads, rows)

    def _tty_lines(
        self, heads: np.ndarray, data: list[bytes], idx: np.ndarray
    ) -> list[tuple[int, str | None, int, str]]:
        rows: list[tuple[int, str | None, int, str]] = []
        if idx.size == 0:
            return rows
        keys = heads["pid"][idx].astype(np.uint64) << np.uint64(32) | heads["tty"][idx]
        for key64 in np.unique(keys):
            sel = idx[keys == key64]  # this stream's chunks, in time order
            key = (int(key64 >> np.uint64(32)), int(key64 & np.uint64(0xFFFFFFFF)))
            st = self.streams.setdefault(key, _Stream())
            lens = heads["len"][sel].astype(np.int64)
            raw_chunk = (heads["flags"][sel] & F_ICANON) == 0
            trunc_chunk = (heads["flags"][sel] & F_TRUNC) != 0
            buf = st.pending + b"".join(data[i] for i in sel)
            base = len(st.pending)
            ends = np.cumsum(lens) + base  # end offset of each chunk in buf
            arr = np.frombuffer(buf, np.uint8)
            term = np.flatnonzero((arr == 0x0A) | (arr == 0x0D) | (arr == 0x03))
            start = 0
            for t in term:
                c = int(np.searchsorted(ends, t, side="right"))  # chunk holding the terminator
                first = int(np.searchsorted(ends, start, side="right"))
                piece = buf[start:t]
                is_raw = bool(raw_chunk[first : c + 1].any()) or (start < base and st.raw)
                trunc = bool(trunc_chunk[first : c + 1].any()) or (start < base and st.trunc)
                start = int(t) + 1
                if arr[t] == 0x03:  # ^C: the line was abandoned
                    continue
                if is_raw:
                    text, approx = apply_keystrokes(piece)
                    flags = FLAG_KEYSTROKES | (FLAG_APPROX if approx else 0)
                else:
                    text, flags = piece.decode("utf-8", "replace"), FLAG_CANONICAL
                if trunc:
                    flags |= FLAG_TRUNCATED
                if text.strip():
                    rows.append((int(sel[min(c, len(sel) - 1)]), text, flags, SHELL_LINE))
            rest = buf[start:]
            first_rest = int(np.searchsorted(ends, start, side="right"))
            st.raw = bool(raw_chunk[first_rest:].any()) or (start < base and st.raw)
            st.trunc = bool(trunc_chunk[first_rest:].any())
            st.pending = rest[-MAX_PENDING:]
            if not st.pending:
                self.streams.pop(key, None)
        return rows

    def _batch(self, heads: np.ndarray, rows: list[tuple[int, str | None, int, str]]) -> pa.RecordBatch:
        sel = np.array([r[0] for r in rows], dtype=np.int64)
        h = heads[sel]
        n = len(rows)
        loginuid = h["loginuid"]
        cols: dict[str, pa.Array] = {
            "ts": pa.array(h["ts"].astype(np.int64) + self.wall_offset_ns, pa.int64()),
            "cpu": pa.array(h["cpu"], pa.uint16()),
            "pid": pa.array(h["pid"].astype(np.int32), pa.int32()),
            "tid": pa.array(h["tid"].astype(np.int32), pa.int32()),
            "ppid": pa.array(h["ppid"].astype(np.int32), pa.int32()),
            "uid": pa.array(h["uid"], pa.uint32()),
            "gid": pa.array(h["gid"], pa.uint32()),
            "loginuid": pa.array(loginuid, pa.uint32()),
            "tty": pa.array(encode_tty(h["tty"]), pa.uint32()),
            "sid": pa.array(h["sid"].astype(np.int32), pa.int32()),
            "pgid": pa.array(h["pgid"].astype(np.int32), pa.int32()),
            "comm": pa.array([c.decode("utf-8", "replace") for c in h["comm"]]),
            "cgroup_id": pa.array(h["cgroup_id"], pa.uint64()),
            "syscall": pa.array([r[3] for r in rows]),
            "text": pa.array([r[1] for r in rows], pa.string()),
            "flags_aux": pa.array([r[2] for r in rows], pa.int64()),
        }
        arrays = []
        for f in EVENTS:
            if f.name in cols:
                a = cols[f.name]
                if pa.types.is_dictionary(f.type):
                    a = a.dictionary_encode().cast(f.type)
                arrays.append(a)
            else:
                arrays.append(pa.nulls(n, f.type))
        return pa.RecordBatch.from_arrays(arrays, schema=EVENTS)
