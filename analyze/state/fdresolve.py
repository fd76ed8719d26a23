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
from fcap.analyze.state.fdattr import UPDATE_OWN
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
    """What the descriptor tables are written from.

    Attributes whose own-value pattern is the same in every chained row resolve
    alike, so sources are kept per attribute group: attribute ``a`` of chained
    row ``x`` is attribute ``a`` of the row ``src[x, group[a]]``.
    """

    event_rid: np.ndarray  # per raw row, NO_RID = no descriptor
    chained_rid: np.ndarray  # resolved dup/update rows (ascending rid)
    src: np.ndarray  # (len(chained_rid), groups) rid of the attribute's row, NO_RID = null
    group: np.ndarray  # per attribute of ATTRS: its column of src
    unknown: np.ndarray  # dups whose source was closed or never seen
    need: np.ndarray  # every rid in src (ascending)


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


def resolve(ev: Events, rec: Records, st: Stream, inst: Instances, *,
            timer: Callable[[str], None] = lambda _: None) -> Result:
    """Every event's descriptor record id, and the attribute sources of dup/update rows."""
    rv = _Resolver(ev, rec, st, inst)
    ch = np.flatnonzero((rec.kind == DUP) | (rec.kind == UPDATE))  # ascending rid
    is_dup = rec.kind[ch] == DUP
    own = _own(rec, ch, is_dup)
    group, cols = _groups(own)
    src_ch = _resolve_chained(rv, ch, is_dup, own[:, cols], group)
    timer("fds.chained")
    rid = _events(rv)
    timer("fds.events")
    mark = np.zeros(rec.n, bool)
    mark[src_ch[src_ch >= 0]] = True
    need = np.sort(rec.rid[np.flatnonzero(mark)])
    src = np.where(src_ch >= 0, rec.rid[src_ch], NO_RID)
    return Result(event_rid=rid, chained_rid=rec.rid[ch], src=src, group=group,
                  unknown=rec.unknown[ch], need=need)


def _own(rec: Records, ch: np.ndarray, is_dup: np.ndarray) -> np.ndarray:
    """Per chained record and attribute: whether the record sets it itself (not null).

    A dup sets its close-on-exec only; an update its family and the attributes
    of :data:`~fcap.analyze.state.fdattr.UPDATE_OWN` (the record class bits).
    """
    rk = rec.rk[ch].astype(np.int32)
    upd = ~is_dup
    own = np.zeros((len(ch), len(ATTRS)), bool)
    for i, a in enumerate(UPDATE_OWN):
        own[:, ATTRS.index(a)] = upd & (((rk >> (7 + i)) & 1) == 1)
    own[:, A_FAM] = upd & ((rk & 32) != 0)
    own[:, A_CL] = rec.cl[ch] != 2
    return own


def _groups(own: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Attributes with the same own column: (group of each attribute, first member of each)."""
    first: dict[bytes, int] = {}
    group = np.empty(own.shape[1], np.int64)
    cols: list[int] = []
    for a in range(own.shape[1]):
        key = np.packbits(own[:, a]).tobytes()
        if key not in first:
            first[key] = len(cols)
            cols.append(a)
        group[a] = first[key]
    return group, cols


def _resolve_chained(rv: _Resolver, ch: np.ndarray, is_dup: np.ndarray, own: np.ndarray,
                     group: np.ndarray) -> np.ndarray:
    """Sources (record indices, -1 none) of the chained records ``ch``, per attribute group.

    ``own``: per chained record and group, whether the record sets it itself.
    """
    rec, st, inst = rv.rec, rv.st, rv.inst
    nc, ng = own.shape
    idx = np.int32 if rec.n < 2**31 else np.int64
    src = np.full((nc, ng), -1, idx)
    if nc == 0:
        return src
    g_cl, g_fam, g_ft = group[A_CL], group[A_FAM], group[A_FT]
    ch_of = np.full(rec.n, -1, idx)
    ch_of[ch] = np.arange(nc)
    depth = _depths(inst.parent)[rec.pkey[ch]]
    local = np.full(nc, -1, idx)
    for d in np.flatnonzero(np.bincount(depth)):
        rows = np.flatnonzero(depth == d)
        r = ch[rows]
        t = st.ptr[r]
        fb = np.flatnonzero((t < 0) & (inst.parent[rec.pkey[r]] > 0))
        if len(fb):
            pk = rec.pkey[r[fb]]
            fdq = np.where(is_dup[rows[fb]], rec.sfd[r[fb]], rec.fd[r[fb]])
            tf = rv.alive(inst.parent[pk], fdq, inst.fork_ts[pk], np.zeros(len(fb), bool))
            upd = ~is_dup[rows[fb]] & (tf >= 0)
            tf[upd] = np.where(rec.sock_res[tf[upd]], tf[upd], -1)
            t[fb] = tf
        dead = (t < 0) | (rec.kind[t] == CLOSE)  # t = -1: the dummy record
        unk = is_dup[rows] & dead
        rec.unknown[r] = unk
        o = own[rows]
        tch = np.where(dead, -1, ch_of[t])
        # from a final record (or a chained one of a lower level): its sources
        via = np.where((tch >= 0)[:, None], src[tch], t[:, None].astype(idx))
        via[dead] = -1
        same = (tch >= 0) & (depth[tch] == d)
        pend = ~o & same[:, None]
        cur = np.where(o, r[:, None].astype(idx), via)
        cur[unk] = -1
        pend[unk] = False
        cur[pend] = -1
        local[rows] = np.arange(len(rows))
        src[rows] = _jump(cur, pend, np.where(same, local[tch], -1))
        local[rows] = -1
        s_cl, s_fam, s_ft = src[rows, g_cl], src[rows, g_fam], src[rows, g_ft]
        rec.cl_res[r] = np.where(s_cl >= 0, rec.cl[s_cl], 2)
        rec.sock_res[r] = ((s_fam >= 0) & rec.fam[s_fam]) | ((s_ft >= 0) & rec.fts[s_ft])
    return src


def _jump(src: np.ndarray, pend: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Pointer jumping within one level (local indices): pending attributes take the
    pointee's source once the pointee has one; otherwise the pointer skips ahead."""
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
    own = st.ev_own  # -1 (none) reads the dummy record: NO_RID
    rid = rec.rid.copy()
    rid[(rec.kind == CLOSE) | rec.unknown] = NO_RID
    out = rid[own]
    del rid
    chk = np.flatnonzero((rec.cl_res == 1)[own] & (out != NO_RID))
    if len(chk):
        dead = rv.execs.any_in(ev.pkey[chk], rec.ts[own[chk]], ev.ts[chk])
        out[chk[dead]] = NO_RID
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
