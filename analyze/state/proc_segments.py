"""Process segments in numpy: ``fc_seg``, ``fc_segf``, ``fc_lin`` and ``fc_cwd``.

Part of :mod:`fcap.analyze.state.processes` (see its docstring for the tables).
``fc_seg0`` holds the state-change rows (start, exec, cwd, ppid) without their
instance; here every row gets its instance (``pkey``: the pid's latest instance
started at or before the row), a forked child's start row gets its parent
instance (``src_pkey``), and the per-instance forward fill (``fc_segf``: image,
cwd, ppid and comm in force at each row) is resolved through forks: a forked
child starts with its parent's image and cwd at the fork, and the parent may
itself be a child that has not exec'ed, hence the fixed point (at most
``max_depth`` rounds, as deep as such fork chains go). The parent's state is
read at its last row at or before the fork (its exec row when start, exec and
ppid rows share that timestamp: a pid first seen at its exec). The lookup
(:func:`asof`) ranks times instead of packing them as
:func:`fcap.analyze.state.keys.asof` does, because snapshot-era rows
(``TS_MIN``) would not fit a packed time span. From the filled rows come the lineage intervals
(``fc_lin``: a new one where the image or the parent changes) and the cwd
intervals (``fc_cwd``).

Everything is whole-column numpy over the ~100k segment rows; DuckDB window
functions with ``last_value(... IGNORE NULLS)`` cost several times more.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEG_COLS = (
    ("sid", "BIGINT"), ("pkey", "BIGINT"), ("ikind", "VARCHAR"), ("src_pkey", "BIGINT"),
    ("pid", "INTEGER"), ("ts", "BIGINT"), ("ord", "INTEGER"), ("kind", "VARCHAR"),
    ("ppid", "INTEGER"), ("comm", "VARCHAR"), ("img", "BIGINT"), ("cwd", "VARCHAR"),
)
_CWD_COLS = (("pkey", "BIGINT"), ("s", "BIGINT"), ("e", "BIGINT"), ("cwd", "VARCHAR"))
_SEGF_COLS = (
    ("pkey", "BIGINT"), ("pid", "INTEGER"), ("ts", "BIGINT"), ("ord", "INTEGER"),
    ("kind", "VARCHAR"), ("ikind", "VARCHAR"), ("fimg", "BIGINT"), ("fcwd", "VARCHAR"),
    ("fppid", "INTEGER"), ("fcomm", "VARCHAR"),
)


def asof(rk: np.ndarray, rt: np.ndarray, qk: np.ndarray, qt: np.ndarray,
         qvalid: np.ndarray | None = None) -> np.ndarray:
    """Per query, the index of the right row with ``rk == qk`` and the greatest ``rt <= qt``.

    The right side must be sorted by ``(rk, rt)``; among rows with equal
    ``(rk, rt)`` the last one is returned. -1 where there is none (or where
    ``qvalid`` is false). Keys and times are ranked so that the lexicographic
    search is one ``np.searchsorted`` over packed int64 values.
    """
    out = np.full(len(qk), -1, np.int64)
    sel = np.arange(len(qk)) if qvalid is None else np.flatnonzero(qvalid)
    if not len(rk) or not len(sel):
        return out
    qk, qt = qk[sel], qt[sel]
    first = np.ones(len(rk), bool)
    first[1:] = rk[1:] != rk[:-1]
    rkr = np.cumsum(first) - 1  # rank of the key (rk is sorted)
    uk = rk[first]
    ut = np.sort(rt)  # np.unique hashes, several times slower than a sort here
    ut = ut[np.concatenate(([True], ut[1:] != ut[:-1]))]
    bits = int(len(ut) + 1).bit_length()
    rc = (rkr << bits) | (np.searchsorted(ut, rt) + 1)
    qkr = np.minimum(np.searchsorted(uk, qk), len(uk) - 1).astype(np.int64)
    ok = uk[qkr] == qk
    qc = (qkr << bits) | np.searchsorted(ut, qt, side="right")
    idx = np.searchsorted(rc, qc, side="right") - 1
    ok &= idx >= 0
    ok[ok] &= rkr[idx[ok]] == qkr[ok]
    out[sel[ok]] = idx[ok]
    return out


def _ffill(valid: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per row, the index of the last valid row of its partition at or before it; -1 if none.

    ``first``: per row, the index of its partition's first row (rows sorted by partition).
    """
    src = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
    return np.where(src >= first, src, -1)


def _is(a: pa.Array, value: str) -> np.ndarray:
    """``a == value`` as a bool array (null: false), without Python string objects."""
    return pc.equal(a, value).fill_null(False).to_numpy(zero_copy_only=False)


def _col(t: pa.Table, name: str) -> pa.Array:
    return t.column(name).combine_chunks()


def build(con: Any, max_depth: int, ts_max: int) -> None:
    """Create ``fc_seg``, ``fc_segf``, ``fc_lin`` and ``fc_cwd`` from ``fc_seg0`` and ``fc_pinst``.

    ``ts_max`` ends the last interval of an instance in ``fc_cwd`` (and in
    ``fc_lin`` when no later instance of its pid starts).
    """
    seg = con.sql("SELECT pid, ts, ord, kind, ppid, comm, img, cwd FROM fc_seg0").to_arrow_table()
    inst = con.sql(
        "SELECT pkey, pid, ts, kind, start_ts FROM fc_pinst WHERE pid IS NOT NULL AND ts IS NOT NULL "
        "ORDER BY pid, ts"
    ).to_arrow_table()
    i_pid = _col(inst, "pid").to_numpy(zero_copy_only=False).astype(np.int64)
    i_ts = _col(inst, "ts").to_numpy().astype(np.int64)
    i_pkey = _col(inst, "pkey").to_numpy().astype(np.int64)
    i_fork = _is(_col(inst, "kind"), "fork")

    pid_a = _col(seg, "pid")
    pid = pid_a.fill_null(0).to_numpy().astype(np.int64)
    ts_a = _col(seg, "ts")
    ts_ok = ts_a.is_valid().to_numpy(zero_copy_only=False)
    ts = ts_a.fill_null(0).to_numpy().astype(np.int64)
    ppid_a = _col(seg, "ppid")
    ppid_ok = ppid_a.is_valid().to_numpy(zero_copy_only=False) & ts_ok
    ppid = ppid_a.fill_null(0).to_numpy().astype(np.int64)
    # the instance (inner: rows before any instance of their pid are dropped) and the
    # parent instance of a forked child's start row
    ii = asof(i_pid, i_ts, pid, ts, pid_a.is_valid().to_numpy(zero_copy_only=False) & ts_ok)
    pi = asof(i_pid, i_ts, ppid, ts, ppid_ok)
    keep = np.flatnonzero(ii >= 0)
    ii, pi = ii[keep], pi[keep]
    pkey = i_pkey[ii]
    ordv = _col(seg, "ord").to_numpy().astype(np.int64)[keep]
    ts = ts[keep]
    kind_a = _col(seg, "kind").take(pa.array(keep))
    is_start = _is(kind_a, "start")
    has_src = is_start & i_fork[ii] & (pi >= 0)
    src_pkey = np.where(has_src, i_pkey[np.maximum(pi, 0)], 0)

    # rows in (pkey, ts, ord) order
    order = np.lexsort((ordv, ts, pkey))
    rows = keep[order]
    pkey, ts, ordv = pkey[order], ts[order], ordv[order]
    ii, has_src, src_pkey = ii[order], has_src[order], src_pkey[order]
    n = len(rows)
    take = pa.array(rows)
    img_a = _col(seg, "img").take(take)
    img_ok = img_a.is_valid().to_numpy(zero_copy_only=False).copy()
    img = img_a.fill_null(0).to_numpy().astype(np.int64)
    cwd_a = _col(seg, "cwd").take(take)
    cwd_ok = cwd_a.is_valid().to_numpy(zero_copy_only=False).copy()
    cwd_src = np.arange(n)  # row whose cwd string a row carries
    new_part = np.ones(n, bool)
    new_part[1:] = pkey[1:] != pkey[:-1]
    first = np.maximum.accumulate(np.where(new_part, np.arange(n), 0))

    # the fixed point: fill a forked child's start row from its parent at the fork
    par = asof(pkey, ts, src_pkey, ts, has_src)
    child = np.flatnonzero(par >= 0)
    # among the parent's rows at that ts (start, exec, ppid of a pid first seen at its
    # exec), the last: the child forked after them sees the exec'd image
    par = par[child]
    for _ in range(max_depth):
        fi = _ffill(img_ok, first)[par]
        fc = _ffill(cwd_ok, first)[par]
        set_img = ~img_ok[child] & (fi >= 0)
        set_cwd = ~cwd_ok[child] & (fc >= 0)
        if not (set_img.any() or set_cwd.any()):
            break
        c, f = child[set_img], fi[set_img]
        img[c], img_ok[c] = img[f], True
        c, f = child[set_cwd], fc[set_cwd]
        cwd_src[c], cwd_ok[c] = cwd_src[f], True

    cwd_all = cwd_a.take(pa.array(cwd_src))
    cwd_cur = _masked(cwd_all, cwd_ok)
    img_cur = pa.array(img, pa.int64(), mask=~img_ok)
    ppid_s = ppid_a.take(pa.array(rows))
    comm_s = _col(seg, "comm").take(take)
    kind_s = kind_a.take(pa.array(order))
    ikind = _col(inst, "kind").take(pa.array(ii))
    pid_s = pid_a.take(take)
    ts_s = pa.array(ts)
    ord_s = pa.array(ordv)
    pkey_s = pa.array(pkey)
    create_table(con, "fc_seg", _SEG_COLS, {
        "sid": pa.array(np.arange(1, n + 1, dtype=np.int64)), "pkey": pkey_s, "ikind": ikind,
        "src_pkey": pa.array(src_pkey, pa.int64(), mask=~has_src), "pid": pid_s, "ts": ts_s,
        "ord": ord_s, "kind": kind_s, "ppid": ppid_s, "comm": comm_s, "img": img_cur,
        "cwd": cwd_cur,
    })
    fi = _ffill(img_ok, first)
    fc = _ffill(cwd_ok, first)
    fp = _ffill(ppid_s.is_valid().to_numpy(zero_copy_only=False), first)
    fm = _ffill(comm_s.is_valid().to_numpy(zero_copy_only=False), first)
    fcwd = _gather(cwd_cur, fc)
    fcomm = _gather(comm_s, fm)
    create_table(con, "fc_segf", _SEGF_COLS, {
        "pkey": pkey_s, "pid": pid_s, "ts": ts_s, "ord": ord_s, "kind": kind_s, "ikind": ikind,
        "fimg": _gather(img_cur, fi), "fcwd": fcwd, "fppid": _gather(ppid_s, fp), "fcomm": fcomm,
    })

    # fc_lin: a new interval where the image or the parent changes (IS DISTINCT FROM)
    ppid_v = ppid_s.fill_null(0).to_numpy().astype(np.int64)
    img_f, img_fok = np.where(fi >= 0, img[np.maximum(fi, 0)], 0), fi >= 0
    ppid_f, ppid_fok = ppid_v[np.maximum(fp, 0)], fp >= 0
    is_lin = new_part | _distinct(img_f, img_fok) | _distinct(ppid_f, ppid_fok)
    lin = np.flatnonzero(is_lin)
    nxt_inst = np.full(len(i_ts), -1, np.int64)  # the pid's next instance
    same_pid = np.flatnonzero(i_pid[1:] == i_pid[:-1])
    nxt_inst[same_pid] = same_pid + 1
    # e = coalesce(the next interval's start, the pid's next instance's start, ts_max)
    e, has_next = _next_in_part(ts[lin], new_part[lin], 0)
    ni = nxt_inst[ii[lin]]
    e = np.where(has_next, e, np.where(ni >= 0, i_ts[np.maximum(ni, 0)], ts_max))
    keep_lin = e > ts[lin]
    lin, e = lin[keep_lin], e[keep_lin]
    pid_v = pid_s.fill_null(0).to_numpy().astype(np.int64)
    pp = asof(i_pid, i_ts, ppid_f[lin], ts[lin], ppid_fok[lin] & (ppid_f[lin] != pid_v[lin]))
    lrows = pa.array(lin)
    t = pa.table({
        "lid": pa.array(np.arange(1, len(lin) + 1, dtype=np.int64)), "pkey": pkey_s.take(lrows),
        "pid": pid_s.take(lrows), "s": ts_s.take(lrows), "e": pa.array(e, pa.int64()),
        "ppid": pa.array(ppid_f[lin], pa.int64(), mask=~ppid_fok[lin]),
        "img": pa.array(img_f[lin], pa.int64(), mask=~img_fok[lin]),
        "fcomm": fcomm.take(lrows), "start_ts": _col(inst, "start_ts").take(pa.array(ii[lin])),
        "ppkey": pa.array(i_pkey[np.maximum(pp, 0)], pa.int64(), mask=pp < 0),
    })
    con.register("fc_lin_arrow", t)
    try:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE fc_lin AS
            SELECT l.lid, l.pkey, CAST(l.pid AS INTEGER) AS pid, l.s, l.e,
                   CAST(l.ppid AS INTEGER) AS ppid, l.img, coalesce(i.name, l.fcomm) AS name,
                   i.exe, i.exepath, coalesce(i.argv[2:], []) AS argv_tail, i.env,
                   CAST(l.start_ts AS BIGINT) AS start_ts, l.ppkey
            FROM fc_lin_arrow l LEFT JOIN fc_img i ON i.img = l.img
            """
        )
    finally:
        con.unregister("fc_lin_arrow")

    # fc_cwd: the process's own cwd intervals
    codes = pc.dictionary_encode(fcwd).indices.fill_null(-1).to_numpy().astype(np.int64)
    cw = np.flatnonzero(new_part | _distinct(codes, codes >= 0))
    create_table(con, "fc_cwd", _CWD_COLS, {
        "pkey": pkey_s.take(pa.array(cw)), "s": pa.array(ts[cw]),
        "e": pa.array(_next_in_part(ts[cw], new_part[cw], ts_max)[0]),
        "cwd": fcwd.take(pa.array(cw)),
    })


def _distinct(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per row, ``v IS DISTINCT FROM`` the previous row's value (nulls where ``ok`` is false)."""
    d = np.zeros(len(v), bool)
    d[1:] = (ok[1:] != ok[:-1]) | (ok[1:] & (v[1:] != v[:-1]))
    return d


def _next_in_part(ts: np.ndarray, new_part: np.ndarray,
                  default: int) -> tuple[np.ndarray, np.ndarray]:
    """``lead(ts, 1, default)`` within partitions (``new_part`` marks each first row),
    and whether there was a next row."""
    has = np.zeros(len(ts), bool)
    has[:-1] = ~new_part[1:]
    out = np.full(len(ts), default, np.int64)
    out[:-1][has[:-1]] = ts[1:][has[:-1]]
    return out, has


def _masked(a: pa.Array, ok: np.ndarray) -> pa.Array:
    """``a`` with nulls where ``ok`` is false."""
    return a.take(pa.array(np.arange(len(a)), mask=~ok))


def _gather(a: pa.Array, idx: np.ndarray) -> pa.Array:
    """``a[idx]`` with null where ``idx`` is -1."""
    return a.take(pa.array(np.maximum(idx, 0), mask=idx < 0))


def create_table(con: Any, name: str, cols: tuple[tuple[str, str], ...],
                 data: dict[str, pa.Array]) -> None:
    """``CREATE OR REPLACE TEMP TABLE name`` from arrow columns, cast to ``cols``' types."""
    view = f"{name}_arrow"
    sel = ", ".join(f'CAST("{c}" AS {ty}) AS "{c}"' for c, ty in cols)
    con.register(view, pa.table(data))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {sel} FROM {view}")
    finally:
        con.unregister(view)
