"""Descriptor lookups over whole columns (numpy): one sort of a key stream, then fills.

The *stream* holds, per process instance and descriptor number (key ``K``),
the rows that read or write descriptor state, ordered by time rank:

* every event with an fd (a query: "which record is valid here?"), merged with
  the record the event itself makes when it is about the same fd;
* the other records (snapshot ones first, a close just after its event);
* a query per dup for its source fd.

After one sort by the packed ``(K, rank)``, a running maximum gives every row
the latest record at or before it (and the latest one that can be a socket,
for updates). Dups and updates are "chained" records: their state comes from
the record they point at, resolved level by level down the fork tree by
pointer jumping per attribute (``src[x, a]``: the record whose attribute ``a``
row ``x`` shows). A lookup that finds no record of its own instance falls back
to the parent instance at the fork (iterating up the tree for those rows only);
close-on-exec records die at the next exec of the instance that holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fcap.analyze.state import keys
from fcap.analyze.state.positions import Events

ATTRS = ("fd_type", "name", "name_raw", "flags", "cloexec", "l4proto", "family", "lip",
         "lport", "rip", "rport", "role", "connected", "ino")
A_CL, A_FAM, A_FT = ATTRS.index("cloexec"), ATTRS.index("family"), ATTRS.index("fd_type")
OPEN, CLOSE, DUP, UPDATE, EXEC = 1, 2, 3, 4, 5
NO_RID = np.int64(-(2**62))
TS_MIN = -(2**62)


@dataclass
class Snapshot:
    rid: np.ndarray
    pkey: np.ndarray
    fd: np.ndarray
    cl: np.ndarray  # 0 false, 1 true, 2 null
    fam: np.ndarray
    fts: np.ndarray


@dataclass
class Instances:
    parent: np.ndarray  # by pkey: the instance it was forked from, 0 = none
    fork_ts: np.ndarray


@dataclass
class Result:
    event_rid: np.ndarray  # per raw row, NO_RID = no descriptor
    chained_rid: np.ndarray  # resolved dup/update rows (ascending rid)
    src: np.ndarray  # (len(chained_rid), len(ATTRS)) rid of the attribute's row, NO_RID = null
    unknown: np.ndarray  # dups whose source was closed or never seen


class _Records:
    """Every record (event records then snapshot ones) as parallel arrays."""

    def __init__(self, ev: Events, snap: Snapshot) -> None:
        rk = ev.rec["rk"]
        kind = rk & 7
        pos = np.flatnonzero((kind >= OPEN) & (kind <= UPDATE) & (ev.pkey > 0)
                             & (ev.rec["rfd"] != keys.NONE))
        self.pos = pos
        self.rid = np.concatenate([pos, snap.rid])
        self.pkey = np.concatenate([ev.pkey[pos], snap.pkey])
        self.fd = np.concatenate([ev.rec["rfd"][pos], snap.fd])
        self.ts = np.concatenate([ev.ts[pos], np.full(len(snap.rid), TS_MIN, np.int64)])
        self.g = np.concatenate([ev.g[pos], np.full(len(snap.rid), -1, np.int64)])
        self.kind = np.concatenate([kind[pos], np.full(len(snap.rid), OPEN)]).astype(np.int8)
        self.cl = np.concatenate([(rk[pos] >> 3) & 3, snap.cl]).astype(np.int8)
        self.fam = np.concatenate([((rk[pos] >> 5) & 1).astype(bool), snap.fam])
        self.fts = np.concatenate([((rk[pos] >> 6) & 1).astype(bool), snap.fts])
        self.sfd = np.concatenate([ev.rec["sfd"][pos], np.full(len(snap.rid), keys.NONE)])
        # a dummy last record (kind 0, never in the stream) keeps gathers at index 0 valid
        for name, v in (("rid", NO_RID), ("pkey", 0), ("fd", keys.NONE), ("ts", TS_MIN),
                        ("g", -1), ("kind", 0), ("cl", 2), ("fam", False), ("fts", False),
                        ("sfd", keys.NONE)):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.array([v], a.dtype)]))
        self.n = len(self.rid)
        # resolved close-on-exec and "is a socket" (chained rows filled while resolving)
        self.cl_res = self.cl.copy()
        self.sock_res = self.fam | self.fts
        self.unknown = np.zeros(self.n, bool)


class _Stream:
    """The sorted key stream and its running "latest record" columns."""

    def __init__(self, ev: Events, rec: _Records) -> None:
        n = len(ev.ts)
        qpos = np.flatnonzero((ev.pkey > 0) & (ev.fd != keys.NONE))
        rec_of_pos = np.full(n, -1, np.int64)
        ne = len(rec.pos)
        rec_of_pos[rec.pos] = np.arange(ne)
        qrec = rec_of_pos[qpos]
        del rec_of_pos
        merged_q = qrec >= 0
        merged_q[merged_q] = rec.fd[qrec[merged_q]] == ev.fd[qpos[merged_q]]
        merged_r = np.zeros(rec.n, bool)
        merged_r[qrec[merged_q]] = True
        lone = np.flatnonzero(~merged_r)  # records with a row of their own (snapshot included)
        dups = np.flatnonzero((rec.kind == DUP) & (rec.sfd != keys.NONE))
        r_rank = np.where(rec.g[lone] < 0, 0,
                          4 * (rec.g[lone] + 1) + np.where(rec.kind[lone] == CLOSE, 2, 0))
        pk = np.concatenate([ev.pkey[qpos], rec.pkey[lone], rec.pkey[dups]])
        fd = np.concatenate([ev.fd[qpos], rec.fd[lone], rec.sfd[dups]])
        rank = np.concatenate([4 * (ev.g[qpos] + 1) + 1, r_rank, 4 * (rec.g[dups] + 1) + 3])
        self.isrec = np.concatenate([merged_q, np.ones(len(lone), bool), np.zeros(len(dups), bool)])
        rec_row = np.concatenate([np.where(merged_q, qrec, -1), lone, np.full(len(dups), -1)])
        qtype = np.concatenate([np.ones(len(qpos), np.int8), np.zeros(len(lone), np.int8),
                                np.full(len(dups), 2, np.int8)])
        qref = np.concatenate([qpos, np.full(len(lone), -1), dups])
        self._pack_params(pk, fd, rank)
        packed = self.pack(pk, fd, rank)
        del pk, fd, rank
        perm = np.argsort(packed, kind="stable")
        self.p = packed[perm]
        del packed
        self.kpart = self.p >> self.rb
        self.isrec = self.isrec[perm]
        self.rec = rec_row[perm]
        qtype, qref = qtype[perm], qref[perm]
        del perm
        ar = np.arange(len(self.p))
        self.li = np.maximum.accumulate(np.where(self.isrec, ar, -1))
        kinds = np.where(self.rec >= 0, rec.kind[np.maximum(self.rec, 0)], 0)
        sockish = self.isrec & ((kinds == CLOSE) | (kinds == DUP) | (kinds == UPDATE)
                                | ((kinds == OPEN) & rec.sock_res[np.maximum(self.rec, 0)]))
        lsi = np.maximum.accumulate(np.where(sockish, ar, -1))
        del ar
        # event queries: the latest record at or before (a close event: before its own close)
        qi = np.flatnonzero(qtype == 1)
        closem = self.isrec[qi] & (kinds[qi] == CLOSE)
        cand = np.where(closem, self._excl(self.li, qi), self.li[qi])
        self.ev_own = np.full(n, -1, np.int64)
        self.ev_own[qref[qi]] = self._found(cand, qi)
        # dup sources: the latest record of the source fd, whatever its kind
        di = np.flatnonzero(qtype == 2)
        self.ptr = np.full(rec.n, -1, np.int64)
        self.ptr[qref[di]] = self._found(self.li[di], di)
        # updates: the latest earlier record of the fd that can be a socket
        ui = np.flatnonzero(kinds == UPDATE)
        self.ptr[self.rec[ui]] = self._found(self._excl(lsi, ui), ui)

    def _pack_params(self, pk: np.ndarray, fd: np.ndarray, rank: np.ndarray) -> None:
        self.fdmin = int(fd.min()) if len(fd) else 0
        self.fdspan = (int(fd.max()) - self.fdmin + 1) if len(fd) else 1
        self.rb = keys.bits(int(rank.max()) if len(rank) else 0)
        self.uk = None
        kmax = (int(pk.max()) if len(pk) else 0) * self.fdspan + self.fdspan
        if keys.bits(kmax) + self.rb > 62:
            self.uk = np.unique(self._k64(pk, fd))
            if keys.bits(len(self.uk)) + self.rb > 62:  # pragma: no cover
                raise OverflowError("too many descriptor keys to pack")

    def _k64(self, pk: np.ndarray, fd: np.ndarray) -> np.ndarray:
        return pk * self.fdspan + (fd - self.fdmin)

    def pack(self, pk: np.ndarray, fd: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Packed (key, rank); keys never seen in the stream get -1."""
        k = self._k64(pk, fd)
        bad = (fd < self.fdmin) | (fd >= self.fdmin + self.fdspan)
        if self.uk is not None:
            i = np.minimum(np.searchsorted(self.uk, k), max(len(self.uk) - 1, 0))
            bad |= self.uk[i] != k
            k = i
        out = (k << self.rb) | rank
        out[bad] = -1
        return out

    @staticmethod
    def _excl(run: np.ndarray, i: np.ndarray) -> np.ndarray:
        return np.where(i > 0, run[np.maximum(i - 1, 0)], -1)

    def _found(self, cand: np.ndarray, i: np.ndarray) -> np.ndarray:
        ok = cand >= 0
        ok[ok] = self.kpart[cand[ok]] == self.kpart[i[ok]]
        return np.where(ok, self.rec[np.maximum(cand, 0)], -1)

    def lookup(self, pk: np.ndarray, fd: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Latest record of (pk, fd) with rank <= ``rank``; -1 when none."""
        q = self.pack(pk, fd, np.minimum(rank, (1 << self.rb) - 1))
        order = np.argsort(q, kind="stable")
        pos = np.searchsorted(self.p, q[order], side="right") - 1
        out = np.full(len(q), -1, np.int64)
        ok = (pos >= 0) & (q[order] >= 0)
        cand = np.where(ok, self.li[np.maximum(pos, 0)], -1)
        ok &= cand >= 0
        ok[ok] = self.kpart[cand[ok]] == (q[order][ok] >> self.rb)
        out[order] = np.where(ok, self.rec[np.maximum(cand, 0)], -1)
        return out


def _depths(parent: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(parent), np.int64)
    for _ in range(10000):
        nd = np.where(parent > 0, depth[parent] + 1, 0)
        if (nd == depth).all():
            break
        depth = nd
    return depth


class _Resolver:
    def __init__(self, ev: Events, rec: _Records, st: _Stream, inst: Instances) -> None:
        self.ev, self.rec, self.st, self.inst = ev, rec, st, inst
        ex = np.flatnonzero((ev.rec["rk"] & 7) == EXEC)
        self.execs = keys.Windows(ev.pkey[ex], ev.ts[ex])

    def rank_at(self, t: np.ndarray) -> np.ndarray:
        """Stream rank after every event at or before time ``t``."""
        return 4 * (np.searchsorted(self.ev.ts_sorted, t, side="right")) + 3

    def alive(self, inst: np.ndarray, fd: np.ndarray, t: np.ndarray,
              path_exec: np.ndarray) -> np.ndarray:
        """The record of ``fd`` alive in ``inst`` at ``t`` (up the fork tree), else -1.

        ``path_exec``: an exec already happened between the holder's copy and the
        asker (kills a close-on-exec record found).
        """
        rec, par, fts = self.rec, self.inst.parent, self.inst.fork_ts
        out = np.full(len(inst), -1, np.int64)
        act = np.flatnonzero(inst > 0)
        cur_i, cur_t, pe = inst[act], t[act], path_exec[act].copy()
        fd_a = fd[act]
        while len(act):
            r = self.st.lookup(cur_i, fd_a, self.rank_at(cur_t))
            f = r >= 0
            if f.any():
                rf = r[f]
                dead = rec.kind[rf] == CLOSE
                clx = rec.cl_res[rf] == 1
                dead |= clx & pe[f]
                chk = np.flatnonzero(clx & ~dead)
                if len(chk):
                    dead[chk] = self.execs.any_in(cur_i[f][chk], rec.ts[rf][chk], cur_t[f][chk])
                out[act[f]] = np.where(dead, -1, rf)
            up = ~f & (par[cur_i] > 0)
            if not up.any():
                break
            ci = cur_i[up]
            pe = pe[up] | self.execs.any_in(ci, fts[ci], cur_t[up])
            act, fd_a, cur_t, cur_i = act[up], fd_a[up], fts[ci], par[ci]
        return out


def resolve(ev: Events, snap: Snapshot, inst: Instances, *, chained_rid: np.ndarray,
            chained_own: np.ndarray, timer: Callable[[str], None] = lambda _: None) -> Result:
    """Every event's descriptor record id, and the attribute sources of dup/update rows."""
    rec = _Records(ev, snap)
    st = _Stream(ev, rec)
    timer("fds.stream")
    rv = _Resolver(ev, rec, st, inst)
    src_ch, ch = _resolve_chained(rv, chained_rid, chained_own)
    timer("fds.chained")
    rid = _events(rv)
    timer("fds.events")
    src = np.where(src_ch >= 0, rec.rid[np.maximum(src_ch, 0)], NO_RID)
    return Result(event_rid=rid, chained_rid=rec.rid[ch], src=src, unknown=rec.unknown[ch])


def _resolve_chained(rv: _Resolver, chained_rid: np.ndarray,
                     chained_own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rec, st, inst = rv.rec, rv.st, rv.inst
    ch = np.flatnonzero((rec.kind == DUP) | (rec.kind == UPDATE))
    ch = ch[np.argsort(rec.rid[ch], kind="stable")]
    nc, na = len(ch), len(ATTRS)
    src = np.full((nc, na), -1, np.int64)
    if nc == 0:
        return src, ch
    j = np.searchsorted(chained_rid, rec.rid[ch])
    own = chained_own[np.minimum(j, max(len(chained_rid) - 1, 0))]
    ch_of = np.full(rec.n, -1, np.int64)
    ch_of[ch] = np.arange(nc)
    depth = _depths(inst.parent)[rec.pkey[ch]]
    is_dup = rec.kind[ch] == DUP
    for d in np.unique(depth):
        rows = np.flatnonzero(depth == d)
        r = ch[rows]
        t = st.ptr[r].copy()
        fb = np.flatnonzero((t < 0) & (inst.parent[rec.pkey[r]] > 0))
        if len(fb):
            pk = rec.pkey[r[fb]]
            fdq = np.where(is_dup[rows[fb]], rec.sfd[r[fb]], rec.fd[r[fb]])
            tf = rv.alive(inst.parent[pk], fdq, inst.fork_ts[pk], np.zeros(len(fb), bool))
            upd = ~is_dup[rows[fb]] & (tf >= 0)
            tf[upd] = np.where(rec.sock_res[tf[upd]], tf[upd], -1)
            t[fb] = tf
        dead = (t < 0) | (rec.kind[np.maximum(t, 0)] == CLOSE)
        dup = is_dup[rows]
        rec.unknown[r] = dup & dead
        o = own[rows].copy()
        o[dup] = False
        o[dup, A_CL] = own[rows][dup, A_CL]
        self_src = np.where(o, r[:, None], -1)
        tch = np.where(dead, -1, ch_of[np.maximum(t, 0)])
        # from a final record (or a chained one of a lower level): its sources
        via = np.where(dead[:, None], -1, np.where((tch >= 0)[:, None],
                       src[np.maximum(tch, 0)], t[:, None]))
        same = (tch >= 0) & (depth[np.maximum(tch, 0)] == d)
        pend = (~o) & same[:, None]
        cur = np.where(o, self_src, via)
        unk = rec.unknown[r]
        cur[unk] = -1
        pend[unk] = False
        local = np.full(nc, -1, np.int64)
        local[rows] = np.arange(len(rows))
        src[rows] = _jump(np.where(pend, -1, cur), pend, np.where(same, local[np.maximum(tch, 0)], -1))
        s_cl, s_fam, s_ft = src[rows, A_CL], src[rows, A_FAM], src[rows, A_FT]
        rec.cl_res[r] = np.where(s_cl >= 0, rec.cl[np.maximum(s_cl, 0)], 2)
        rec.sock_res[r] = ((s_fam >= 0) & rec.fam[np.maximum(s_fam, 0)]) | (
            (s_ft >= 0) & rec.fts[np.maximum(s_ft, 0)])
    return src, ch


def _jump(src: np.ndarray, pend: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Pointer jumping within one level (local indices): pending attributes take the
    pointee's source once the pointee has one; otherwise the pointer skips ahead."""
    src, pend, nxt = src.copy(), pend.copy(), nxt.copy()
    while True:
        i = np.flatnonzero(pend.any(axis=1))
        if len(i) == 0:
            return src
        j = nxt[i]
        pi, pj = pend[i], pend[j]
        take = pi & ~pj
        blk = src[i]
        blk[take] = src[j][take]
        src[i] = blk
        pend[i] = pi & pj
        nxt[i] = nxt[j]


def _events(rv: _Resolver) -> np.ndarray:
    """Per raw row: the rid of the descriptor record valid at the event, else NO_RID."""
    ev, rec, st, inst = rv.ev, rv.rec, rv.st, rv.inst
    own = st.ev_own
    out = np.full(len(ev.ts), NO_RID, np.int64)
    qpos = np.flatnonzero(own >= 0)
    r = own[qpos]
    dead = (rec.kind[r] == CLOSE) | rec.unknown[r]
    chk = np.flatnonzero(~dead & (rec.cl_res[r] == 1))
    if len(chk):
        dead[chk] = rv.execs.any_in(ev.pkey[qpos[chk]], rec.ts[r[chk]], ev.ts[qpos[chk]])
    out[qpos[~dead]] = rec.rid[r[~dead]]
    # no record of its own instance: what the instance inherited at its fork
    fb = np.flatnonzero((own < 0) & (ev.pkey > 0) & (ev.fd != keys.NONE))
    fb = fb[inst.parent[ev.pkey[fb]] > 0]
    if len(fb):
        pk = ev.pkey[fb]
        pe = rv.execs.any_in(pk, inst.fork_ts[pk], ev.ts[fb])
        t = rv.alive(inst.parent[pk], ev.fd[fb], inst.fork_ts[pk], pe)
        ok = t >= 0
        ok[ok] = ~rec.unknown[t[ok]]
        out[fb[ok]] = rec.rid[t[ok]]
    return out
