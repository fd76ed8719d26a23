"""Descriptor lookups over whole columns (numpy): one sort of a key stream, then fills.

The *stream* holds, per process instance and descriptor number (key ``K``),
the rows that read or write descriptor state, in time order:

* every event with an fd (a query: "which record is valid here?"), merged with
  the record the event itself makes when it is about the same fd;
* the other records (snapshot ones first, a close just after its event, the
  second record of a pipe/socketpair row after the row's other entries);
* a query per dup for its source fd.

The stream is laid out in time order directly (every event's entries are
placed by a prefix sum of per-event counts, no sort), then sorted once by
``(K, position)`` packed into one int64 (all values distinct, so numpy's
fast unstable sort gives the one order). A running maximum then gives every
entry the latest record at or before it (and the latest one that can be a
socket, for updates). Queries whose descriptor number no record has are left
out: they would find nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fcap.analyze.state import keys
from fcap.analyze.state.positions import Events

ATTRS = ("fd_type", "name", "name_raw", "flags", "cloexec", "l4proto", "family", "lip",
         "lport", "rip", "rport", "role", "connected", "ino")
A_CL, A_FAM, A_FT = ATTRS.index("cloexec"), ATTRS.index("family"), ATTRS.index("fd_type")
OPEN, CLOSE, DUP, UPDATE, EXEC, FORK = 1, 2, 3, 4, 5, 6
NO_RID = np.int64(-(2**62))
TS_MIN = -(2**62)
#: Record id of the second descriptor of a pipe/pipe2/socketpair row: ``PAIR_BASE`` + the
#: row's scan position (above every scan position; snapshot ids are negative).
PAIR_BASE = 2**48


@dataclass
class Snapshot:
    """The start snapshot's descriptors (records with negative ids)."""

    rid: np.ndarray
    pkey: np.ndarray
    fd: np.ndarray
    cl: np.ndarray  # 0 false, 1 true, 2 null
    fam: np.ndarray
    fts: np.ndarray


@dataclass
class Instances:
    """Fork tree of the process instances, indexed by pkey."""

    parent: np.ndarray  # by pkey: the instance it was forked from, 0 = none
    fork_ts: np.ndarray


def _filled(parts: list[np.ndarray], last: object, dtype: type) -> np.ndarray:
    """The parts concatenated, plus one ``last`` element, as ``dtype``."""
    n = sum(len(p) for p in parts)
    out = np.empty(n + 1, dtype)
    i = 0
    for p in parts:
        out[i:i + len(p)] = p
        i += len(p)
    out[n] = last
    return out


def pair_rows(ev: Events) -> np.ndarray:
    """Per raw row: it makes a second final record (pipe/pipe2/socketpair: its second
    descriptor is ``sfd``, see ``fds.record_sql``)."""
    return ((ev.rec["rk"] & 7) == OPEN) & (ev.rec["sfd"] != keys.NONE)


class Records:
    """Every record as parallel arrays: event records (in scan order), snapshot ones, the
    second records of pipe/socketpair rows (``rid`` = :data:`PAIR_BASE` + the row's id),
    then a dummy.

    The dummy last record (kind 0, never in the stream) makes index -1 a valid
    "no record" in gathers.
    """

    def __init__(self, ev: Events, snap: Snapshot) -> None:
        rk = ev.rec["rk"]
        kind = (rk & 7).astype(np.int8)
        self.kind_ev = kind
        self.mask = (kind >= OPEN) & (kind <= UPDATE) & (ev.pkey > 0) & (
            ev.rec["rfd"] != keys.NONE)  # per raw row: it makes a record
        self.pair = self.mask & pair_rows(ev)  # ... and a second one
        pos = np.flatnonzero(self.mask)
        pos2 = np.flatnonzero(self.pair)
        ns, n2 = len(snap.rid), len(pos2)
        self.pos = pos
        self.ne, self.ns, self.n2 = len(pos), ns, n2
        sfd = ev.rec["sfd"]
        self.rid = _filled([pos, snap.rid, pos2 + PAIR_BASE], NO_RID, np.int64)
        self.pkey = _filled([ev.pkey[pos], snap.pkey, ev.pkey[pos2]], 0, np.int64)
        self.fd = _filled([ev.rec["rfd"][pos], snap.fd, sfd[pos2]], keys.NONE, np.int64)
        self.ts = _filled([ev.ts[pos], np.full(ns, TS_MIN, np.int64), ev.ts[pos2]], TS_MIN,
                          np.int64)
        self.kind = _filled([kind[pos], np.full(ns, OPEN, np.int8), kind[pos2]], 0, np.int8)
        rkp, rk2 = rk[pos], rk[pos2]
        self.rk = _filled([rkp, np.zeros(ns, np.int32), rk2], 0, np.int32)
        self.cl = _filled([(rkp >> 3) & 3, snap.cl, (rk2 >> 3) & 3], 2, np.int8)
        self.fam = _filled([(rkp & 32) != 0, snap.fam, (rk2 & 32) != 0], False, bool)
        self.fts = _filled([(rkp & 64) != 0, snap.fts, (rk2 & 64) != 0], False, bool)
        self.sfd = _filled([sfd[pos], np.full(ns + n2, keys.NONE)], keys.NONE, np.int64)
        self.n = len(self.rid)
        # resolved close-on-exec and "is a socket" (chained rows filled while resolving)
        self.cl_res = self.cl.copy()
        self.sock_res = self.fam | self.fts
        self.unknown = np.zeros(self.n, bool)


class Stream:
    """The sorted key stream and its "latest record" answers.

    After construction: ``ev_own`` (per raw row, the latest record of its own
    instance and fd at the event, -1 none) and ``ptr`` (per record: a dup's
    source record, an update's latest earlier socket-capable record, -1 none).
    """

    def __init__(self, ev: Events, rec: Records) -> None:
        n, ne = len(ev.ts), rec.ne
        self.nsnap = nsnap = rec.ns
        real = rec.fd[:-1]
        lo, hi = (int(real.min()), int(real.max())) if len(real) else (0, -1)
        fd, rfd, sfd = ev.fd, ev.rec["rfd"], ev.rec["sfd"]
        # per raw row: a query (of a descriptor number some record has), merged with
        # the row's own record when it is about the same fd; else the record has an
        # entry of its own (lone: before the query, a close after it); a dup's query
        qm = (ev.pkey > 0) & (fd >= lo) & (fd <= hi)
        merged = rec.mask & qm & (fd == rfd)
        lone = rec.mask & ~merged
        lclose = lone & (rec.kind_ev == CLOSE)
        dq = rec.mask & (rec.kind_ev == DUP) & (sfd >= lo) & (sfd <= hi)
        pr = rec.pair  # a pipe/socketpair row's second record: its last entry
        cnt = qm.view(np.int8) + lone.view(np.int8) + dq.view(np.int8) + pr.view(np.int8)
        g = ev.g
        ident = len(g) == 0 or (g[0] == 0 and g[-1] == n - 1 and bool((np.diff(g) == 1).all()))
        if not ident:
            cg = np.empty(n, np.int8)
            cg[g] = cnt
            cnt = cg
        idx = np.int32 if n * 4 + nsnap < 2**31 else np.int64
        cum = np.empty(n + 1, idx)
        cum[0] = nsnap
        np.cumsum(cnt, out=cum[1:], dtype=idx)
        cum[1:] += nsnap
        del cnt
        self.cum = cum  # cum[c]: stream position of the first entry of event order c
        self.nn = nn = int(cum[-1])
        first = cum[:-1] if ident else cum[g]  # per raw row: its first entry
        self._keys(ev, rec, lo, hi, nn)
        # rec index of each raw row that makes a record (records are in scan order)
        recidx = np.cumsum(rec.mask, dtype=np.int32 if ne < 2**31 else np.int64)
        recidx -= 1
        qpos = np.flatnonzero(qm)
        qslot = first[qpos]
        qslot += (lone & ~lclose)[qpos]
        lpos = np.flatnonzero(lone)
        lslot = first[lpos]
        lslot += (lclose & qm)[lpos]
        dpos = np.flatnonzero(dq)
        dslot = first[dpos]
        dslot += (qm.view(np.int8) + (lone & ~lclose).view(np.int8))[dpos]
        ppos = np.flatnonzero(pr)
        pslot = first[ppos]
        pslot += qm[ppos].view(np.int8) + lone[ppos].view(np.int8)
        pidx = np.arange(ne + nsnap, ne + nsnap + rec.n2, dtype=np.int64)
        del first, lone, lclose, dq, ppos
        # the stream in time order: packed keys and the record of each entry
        kev = self.key(ev.pkey, fd, check=False)
        p = np.empty(nn, np.int64)
        p[:nsnap] = self.key(rec.pkey[ne:ne + nsnap], rec.fd[ne:ne + nsnap])
        p[qslot] = kev[qpos]
        lrec = recidx[lpos]
        p[lslot] = self.key(rec.pkey[lrec], rec.fd[lrec])
        drec = recidx[dpos]
        p[dslot] = self.key(rec.pkey[drec], rec.sfd[drec])
        p[pslot] = self.key(rec.pkey[pidx], rec.fd[pidx])
        del kev
        rec_r = np.full(nn, -1, recidx.dtype)
        rec_r[:nsnap] = np.arange(ne, ne + nsnap)
        rec_r[qslot] = np.where(merged[qpos], recidx[qpos], -1)
        rec_r[lslot] = lrec
        rec_r[pslot] = pidx
        del recidx, merged, pslot, pidx
        p <<= self.pb
        p |= np.arange(nn, dtype=np.int64)
        p.sort()
        self.p = p
        perm = p & ((1 << self.pb) - 1)
        self.kpart = p >> self.pb
        self.rec = rec_s = rec_r[perm]
        del rec_r
        kinds = rec.kind[rec_s]  # the dummy (-1) has kind 0
        ans, lsi = self._latest(rec, rec_s, kinds)
        ans_r = np.empty(nn, ans.dtype)
        ans_r[perm] = ans
        del ans, perm
        self.ev_own = np.full(n, -1, ans_r.dtype)
        self.ev_own[qpos] = ans_r[qslot]
        # dup sources: the latest record of the source fd, whatever its kind
        self.ptr = np.full(rec.n, -1, np.int64)
        self.ptr[drec] = ans_r[dslot]
        del ans_r
        # updates: the latest earlier record of the fd that can be a socket
        ui = np.flatnonzero(kinds == UPDATE)
        self.ptr[rec_s[ui]] = self._found(np.where(ui > 0, lsi[ui - 1], -1), ui)

    def _latest(self, rec: Records, rec_s: np.ndarray,
                kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per sorted entry: the latest record at or before it (a close: before its own
        close), -1 none; and the running index of the latest socket-capable record."""
        nn = len(rec_s)
        ar = np.arange(nn, dtype=rec_s.dtype if nn < 2**31 else np.int64)
        li = np.where(rec_s >= 0, ar, -1)
        np.maximum.accumulate(li, out=li)
        self.li = li
        sockrec = (rec.kind == CLOSE) | (rec.kind == DUP) | (rec.kind == UPDATE) | (
            (rec.kind == OPEN) & rec.sock_res)
        lsi = np.where(sockrec[rec_s], ar, -1)  # the dummy (-1) is no socket
        np.maximum.accumulate(lsi, out=lsi)
        del ar
        closes = np.flatnonzero(kinds == CLOSE)
        cand = li.copy()
        cand[closes] = np.where(closes > 0, li[closes - 1], -1)
        return self._found(cand, None), lsi

    def _keys(self, ev: Events, rec: Records, lo: int, hi: int, nn: int) -> None:
        """Packing parameters: key = pkey * fdspan + (fd - lo), dense when too wide."""
        self.fdmin, self.fdspan = lo, max(hi - lo + 1, 1)
        self.pb = keys.bits(nn)
        self.uk: np.ndarray | None = None
        kmax = int(rec.pkey.max() if rec.n else 0) * self.fdspan + self.fdspan
        kmax = max(kmax, int(ev.pkey.max() if len(ev.pkey) else 0) * self.fdspan + self.fdspan)
        if keys.bits(kmax) + self.pb > 62:
            self.uk = keys.unique(rec.pkey[:-1] * self.fdspan + (rec.fd[:-1] - lo))
            if keys.bits(len(self.uk)) + self.pb > 62:  # pragma: no cover
                raise OverflowError("too many descriptor keys to pack")

    def key(self, pk: np.ndarray, fd: np.ndarray, check: bool = True) -> np.ndarray:
        """Packed key of (pkey, fd); -1 for a descriptor no record has.

        ``check=False``: the fds are known to be in the records' range (or the
        rows out of it are never read).
        """
        k = np.multiply(pk, self.fdspan)
        k += fd
        k -= self.fdmin
        bad = None
        if check:
            bad = (fd < self.fdmin) | (fd >= self.fdmin + self.fdspan)
        if self.uk is not None:
            i = np.minimum(np.searchsorted(self.uk, k), max(len(self.uk) - 1, 0))
            miss = self.uk[i] != k
            bad = miss if bad is None else bad | miss
            k = i
        if bad is not None:
            k[bad] = -1
        return k

    def _found(self, cand: np.ndarray, i: np.ndarray | None) -> np.ndarray:
        """The record at ``cand`` when it has the key of entry ``i`` (None: every entry)."""
        ki = self.kpart if i is None else self.kpart[i]
        ok = (cand >= 0) & (self.kpart[cand] == ki)
        return np.where(ok, self.rec[cand], -1)

    def lookup(self, pk: np.ndarray, fd: np.ndarray, t: np.ndarray,
               ts_sorted: np.ndarray) -> np.ndarray:
        """Latest record of (pk, fd) after every event at or before time ``t``; -1 when none."""
        out = np.full(len(pk), -1, np.int64)
        if self.nn == 0:
            return out
        bound = self.cum[np.searchsorted(ts_sorted, t, side="right")] - 1
        k = self.key(pk, fd)
        q = (k << self.pb) | np.maximum(bound, 0)
        ok = (k >= 0) & (bound >= 0)
        order = np.argsort(q, kind="stable")
        pos = np.searchsorted(self.p, q[order], side="right") - 1
        cand = np.where(pos >= 0, self.li[np.maximum(pos, 0)], -1)
        hit = (cand >= 0) & (self.kpart[cand] == k[order]) & ok[order]
        out[order] = np.where(hit, self.rec[cand], -1)
        return out
