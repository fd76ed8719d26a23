"""Resolution of the descriptor records: chained records and every event's record.

Dups and updates are "chained" records: their state comes from the record
they point at (:class:`~fcap.analyze.state.fdstream.Stream` ``ptr``), resolved
level by level down the fork tree by pointer jumping per attribute
(``src[x, a]``: the record whose attribute ``a`` row ``x`` shows). A lookup
that finds no record of its own instance falls back to the parent instance at
the fork (iterating up the tree for those rows only); close-on-exec records die
at the next exec of the instance that holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fcap.analyze.state import keys
from fcap.analyze.state.fdstream import (
    A_CL,
    A_FAM,
    A_FT,
    ATTRS,
    CLOSE,
    DUP,
    EXEC,
    NO_RID,
    UPDATE,
    Instances,
    Records,
    Snapshot,
    Stream,
)
from fcap.analyze.state.positions import Events


@dataclass
class Result:
    """What the descriptor tables are written from."""

    event_rid: np.ndarray  # per raw row, NO_RID = no descriptor
    chained_rid: np.ndarray  # resolved dup/update rows (ascending rid)
    src: np.ndarray  # (len(chained_rid), len(ATTRS)) rid of the attribute's row, NO_RID = null
    unknown: np.ndarray  # dups whose source was closed or never seen


def prepare(ev: Events, snap: Snapshot) -> tuple[Records, Stream]:
    """The records and the sorted stream (needs no attribute)."""
    rec = Records(ev, snap)
    return rec, Stream(ev, rec)


def _depths(parent: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(parent), np.int64)
    for _ in range(10000):
        nd = np.where(parent > 0, depth[parent] + 1, 0)
        if (nd == depth).all():
            break
        depth = nd
    return depth


class _Resolver:
    """Lookups up the fork tree, with the exec windows that end close-on-exec records."""

    def __init__(self, ev: Events, rec: Records, st: Stream, inst: Instances) -> None:
        self.ev, self.rec, self.st, self.inst = ev, rec, st, inst
        ex = np.flatnonzero((ev.rec["rk"] & 7) == EXEC)
        self.execs = keys.Windows(ev.pkey[ex], ev.ts[ex])

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
            r = self.st.lookup(cur_i, fd_a, cur_t, self.ev.ts_sorted)
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


def resolve(ev: Events, rec: Records, st: Stream, inst: Instances, *, chained_rid: np.ndarray,
            chained_own: np.ndarray, timer: Callable[[str], None] = lambda _: None) -> Result:
    """Every event's descriptor record id, and the attribute sources of dup/update rows.

    ``chained_rid`` (ascending) / ``chained_own``: the dup and update rows and
    which of their attributes they set themselves (not null).
    """
    rv = _Resolver(ev, rec, st, inst)
    src_ch, ch = _resolve_chained(rv, chained_rid, chained_own)
    timer("fds.chained")
    rid = _events(rv)
    timer("fds.events")
    src = np.where(src_ch >= 0, rec.rid[src_ch], NO_RID)
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
