"""File-descriptor state rebuilt in bulk: ``fc_fdrec`` records and ``fc_rid`` per event.

A descriptor record is the state of one descriptor of one process instance
(``pkey``) from its time on, until the next record of the same ``(pkey, fd)``.
Records come from:

* the start snapshot (``raw_fds``), valid from the beginning (``rid`` < 0);
* syscalls that create descriptors (open family, socket, accept, memfd_create,
  eventfd ...): final records (``rid`` = the raw row's scan position);
  ``pipe``/``pipe2``/``socketpair`` rows make two (the first descriptor's,
  ``rid`` = the row's; the second's, ``rid`` = ``fdstream.PAIR_BASE`` + the
  row's, with the same attributes);
* ``dup``/``dup2``/``dup3``/``fcntl(F_DUPFD*)``, which copy the state of the
  source descriptor at that moment (a close or nothing there: ``unknown``);
* updates of sockets (connect, bind, sendto/sendmsg with an address, recvfrom/recvmsg
  of a UDP socket with a peer address; listen changes nothing, as in libsinsp),
  merged with the latest earlier record of the fd that can be a socket;
* ``close``, effective just after the close event (the close event itself
  still sees the descriptor, as in libsinsp); a close is a record meaning "no
  descriptor";
* fork: the child sees every descriptor its parent had open at the fork (the
  first of the two clone exits, see :func:`fdinputs._caller_forks`), and execve ends
  the close-on-exec ones.

Fork inheritance is lazy: nothing is copied. A lookup that finds no record of
its own instance falls back to the parent instance at the fork time (and so
on up the fork tree); a close-on-exec record is dead once an exec of the
instance (or of an instance it was inherited through) happened after it.
The lookups themselves are numpy over whole columns
(:mod:`~fcap.analyze.state.fdstream`: the sorted key stream,
:mod:`~fcap.analyze.state.fdresolve`: chained records, fork fallbacks); the
record attributes are one scan of the capture in SQL
(:mod:`~fcap.analyze.state.fdattr`, ``fc_fdatt``). This module holds the
record class of every raw row (:data:`record_sql`, read in the positions scan:
kind, close-on-exec, socket bits and which attributes an update sets, so numpy
resolves everything without the attributes) and writes the final tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.fields import sockrole
from fcap.analyze.state import fdattr, fdinputs, fdresolve, fdstream, keys
from fcap.analyze.state.fdattr import CREATES, O_CLOEXEC, OPENS, open_flags
from fcap.analyze.state.positions import Events

_CREATES_IN = "(" + ", ".join(f"'{k}'" for k in CREATES) + ")"
_OPENS = "(" + ", ".join(f"'{k}'" for k in OPENS) + ")"
#: Record attributes, in fdstream.ATTRS order.
ATTRS = fdstream.ATTRS

#: Small codes of the syscalls the record class tests (0: any other).
_CODE = {n: i + 1 for i, n in enumerate(dict.fromkeys((
    *OPENS, "socket", "accept", "accept4", *CREATES, "close", "dup", "dup2", "dup3", "fcntl",
    "connect", "sendto", "sendmsg", "recvfrom", "recvmsg", "bind", "listen", "execve", "execveat", "clone", "clone3",
    "fork")))}
assert len(_CODE) < 63
#: The row's syscall code (column ``fc_sc``, see :func:`with_code`): the record class tests
#: it with bit masks instead of comparing strings in every test (~4x faster).
#: A hashed MAP lookup: ~3x cheaper than a CASE comparing the name with each of ~40 strings.
_SC = ("coalesce((MAP {" + ", ".join(f"'{n}': {k}" for n, k in _CODE.items())
       + "})[CAST(syscall AS VARCHAR)], 0)")


def with_code(src: str) -> str:
    """``src`` (a relation with a ``syscall`` column) with the columns ``fc_sc``, the syscall
    code, and ``fc_kind``, the row's record kind (0: none), that :data:`record_sql`,
    :data:`own_sql` and :func:`subset` read (the kind is computed once per row)."""
    return f"(SELECT *, coalesce({_KIND}, 0) AS fc_kind FROM (SELECT *, {_SC} AS fc_sc FROM {src}))"


def _is(name: str) -> str:
    """The row's syscall is ``name``."""
    return f"(fc_sc = {_CODE[name]})"


def _in(values: str, x: str = "syscall") -> str:
    """``x IN values``: for syscall names a bit test on the syscall code, else a CASE (an
    IN list becomes a join that does not keep the scan order)."""
    names = [v.strip() for v in values.strip("()").split(",")]
    if x == "syscall":
        mask = sum(1 << _CODE[n.strip("'")] for n in names)
        return f"((({mask}::BIGINT >> fc_sc) & 1) = 1)"
    return f"(CASE {x} " + " ".join(f"WHEN {n} THEN true" for n in names) + " ELSE false END)"


#: Rows with two descriptors (fd = the first, flags_aux = the second | inode << 32): each
#: makes two final records, the second one in fdstream.PAIR_BASE's id space.
_PAIRS = "('pipe', 'pipe2', 'socketpair')"
#: The caller side of a fork (kind 6, sfd = the child's pid): libsinsp copies the parent's
#: descriptors into the child at the first of the two clone exits, the caller's only when
#: the caller is in the host pid namespace (tid = vtid) and none of CLONE_NEWPID,
#: CLONE_PARENT, CLONE_VFORK (vfork) and CLONE_THREAD is set (parse_clone_exit_caller).
_CLONE_FLAGS = (f"CASE WHEN fc_sc = {_CODE['clone']} THEN a0 WHEN fc_sc = {_CODE['clone3']} "
                "THEN coalesce(flags_aux, 0) ELSE 0 END")
_NO_CALLER_COPY = 0x20000000 | 0x8000 | 0x4000 | 0x10000
# record kinds (fdstream.OPEN ...) per raw row; NULL = the row makes no record
_KIND = f"""CASE
  WHEN {_in(_OPENS)} OR {_in("('socket', 'accept', 'accept4')")}
    THEN CASE WHEN res >= 0 THEN 1 END
  WHEN {_in(_CREATES_IN)}
    THEN CASE WHEN res >= 0 AND (NOT {_in(_PAIRS)} OR fd IS NOT NULL) THEN 1 END
  WHEN {_is('close')} THEN CASE WHEN res = 0 THEN 2 END
  WHEN {_in("('dup', 'dup2', 'dup3', 'fcntl')")}
    THEN CASE WHEN res >= 0 AND (NOT {_is('fcntl')} OR a1 = 0 OR a1 = 1030)
              AND NOT ({_in("('dup2', 'dup3')")} AND a0 = res) THEN 3 END
  WHEN {_is('connect')} THEN CASE WHEN fd IS NOT NULL AND (res >= 0 OR res = -115) THEN 4 END
  WHEN {_in("('sendto', 'sendmsg')")}
    THEN CASE WHEN fd IS NOT NULL AND res >= 0 AND raddr IS NOT NULL THEN 4 END
  WHEN {_in("('recvfrom', 'recvmsg')")}
    THEN CASE WHEN fd IS NOT NULL AND res >= 0 AND raddr IS NOT NULL AND rport > 0
              AND {_in("(2, 10)", "sock_family")}
              AND (l4proto = 17 OR (l4proto IS NULL AND (sock_type & 15) = 2)) THEN 4 END
  WHEN {_is('bind')} THEN CASE WHEN fd IS NOT NULL AND res = 0 THEN 4 END
  WHEN {_in("('execve', 'execveat')")} THEN CASE WHEN res = 0 THEN 5 END
  WHEN {_in("('clone', 'clone3', 'fork')")}
    THEN CASE WHEN res > 0 AND tid = vtid AND ({_CLONE_FLAGS} & {_NO_CALLER_COPY}) = 0
    THEN {fdstream.FORK} END
END"""


def subset(rows: str) -> Callable[[str], str]:
    """A ``wrap`` for :func:`fcap.analyze.state.positions.scan_rn` keeping the rows that
    make or end a record (every row the state depends on) and the rows of table
    ``rows`` (``rn``: the events that need their descriptor): the state is then
    exact for those rows only."""
    return lambda rel: (f"(SELECT * FROM {with_code(rel)} WHERE fc_kind <> 0 "
                        f"OR _rn IN (SELECT rn FROM {rows}))")


def _tri(cond: str) -> str:
    """0 false, 1 true, 2 null."""
    return f"coalesce(CAST(({cond}) AS INTEGER), 2)"


# close-on-exec of the record (tri-state) and "can be a socket" bits (family / type)
_CL = f"""CASE
  WHEN {_in(_OPENS)} THEN {_tri(f"({open_flags()} & {O_CLOEXEC}) <> 0")}
  WHEN {_is('socket')} THEN {_tri(f"(a1 & {O_CLOEXEC}) <> 0")}
  WHEN {_in("('accept', 'accept4')")} THEN {_tri(f"{_is('accept4')} AND (a3 & {O_CLOEXEC}) <> 0")}
  WHEN {_in("('dup', 'dup2', 'dup3', 'fcntl')")}
    THEN {_tri(f"({_is('dup3')} AND (a2 & {O_CLOEXEC}) <> 0) OR ({_is('fcntl')} AND a1 = 1030)")}
  WHEN {_is('pipe2')} THEN {_tri(f"(a1 & {O_CLOEXEC}) <> 0")}
  WHEN {_in(_CREATES_IN)} THEN 0
  ELSE 2 END"""
_FAM = f"""CASE
  WHEN {_is('socket')} THEN {_in("(1, 2, 10)", "a0")}
  WHEN {_is('socketpair')} THEN true
  WHEN {_in("('accept', 'accept4', 'connect', 'sendto', 'sendmsg', 'recvfrom', 'recvmsg')")}
    THEN {_in("(1, 2, 10)", "sock_family")}
  END"""
_FTS = f"""CASE
  WHEN {_is('socket')} THEN {_in("(1, 2, 10, 16)", "a0")}
  WHEN {_is('socketpair')} THEN true
  WHEN {_in("('accept', 'accept4')")} THEN {_in("(1, 2, 10, 16)", "sock_family")}
  END"""

_ARG_FD = ("('pipe', 'pipe2', 'socketpair', 'connect', 'sendto', 'sendmsg', 'recvfrom', "
           "'recvmsg', 'bind', 'listen')")
_DUPS = "('dup', 'dup2', 'dup3', 'fcntl')"

def _any_of(names: tuple[str, ...]) -> str:
    return _in("(" + ", ".join(f"'{n}'" for n in names) + ")")


#: True for a raw row that makes its own final record (open family, socket, accept,
#: descriptor-creating calls that succeeded): its descriptor record is itself (rid = rn).
own_sql = "fc_kind = 1"

#: The descriptor a row's record is about (over :func:`with_code`'s columns).
rfd_sql = f"CASE WHEN {_is('close')} THEN coalesce(fd, a0) WHEN {_in(_ARG_FD)} THEN fd ELSE res END"

#: Per raw row: rk = kind | cloexec << 3 | family-not-null << 5 | socket-type << 6
#: | the attributes an update sets << 7 (fdattr.UPDATE_OWN),
#: rfd = the record's descriptor, sfd = a dup's source descriptor, or the second descriptor
#: of a pipe/socketpair row (fdstream.pair_rows).
record_sql = (
    f"CAST(fc_kind + {_CL} * 8 + coalesce(CAST({_FAM} AS INTEGER), 0) * 32 "
    f"+ coalesce(CAST({_FTS} AS INTEGER), 0) * 64 "
    f"+ ({fdattr.update_own_sql(_any_of)}) * 128 AS INTEGER) AS rk, "
    f"{rfd_sql} AS rfd, "
    f"CASE WHEN {_in(_DUPS)} THEN a0 "
    f"WHEN {_in(_PAIRS)} AND fd IS NOT NULL THEN flags_aux & 4294967295 "
    f"WHEN fc_kind = {fdstream.FORK} THEN res END AS sfd"
)


def build(con: Any, ev: Events, timings: dict[str, float] | None = None,
          keep: np.ndarray | None = None) -> None:
    """Build ``fc_fdrec`` and ``fc_rid`` (needs fc_raw and the process tables).

    DuckDB reads the records' attributes from the capture in a second thread
    while numpy sorts the key stream and resolves every record (both release
    the GIL; only that thread uses the connection meanwhile). ``timings``,
    when given, receives the seconds of each sub-step (``fds.*``;
    ``fds.attributes`` is the wait for the attributes after numpy is done,
    ``fds.write_*`` the parts of the write).

    ``keep`` (per row of ``ev``): only these rows get a ``fc_rid`` row, and
    ``fc_fdrec`` only the chained records they read (the final ones are all kept:
    dropping the others from the attribute table cost more than it saved).
    """
    t = _Timer(timings)
    fdattr.snapshot(con)
    pairs = fdattr.register_kinds(con, ev.rec["rk"] & 7, ev.rn, fdstream.pair_rows(ev))
    snap, inst = fdinputs.snapshot(con), fdinputs.instances(con, ev)
    t("fds.inputs")
    with ThreadPoolExecutor(max_workers=1) as pool:
        job = pool.submit(fdattr.build, con, ev.rn is not None, pairs)
        try:
            rec, st = fdresolve.prepare(ev, snap)
            t("fds.stream")
            res = fdresolve.resolve(ev, rec, st, inst, timer=t)
            del rec, st
        finally:
            job.result()
        t("fds.attributes")
    own = (ev.rec["rk"] & 7) == 1
    if keep is not None:
        res = _restrict(res, keep)
        own &= keep
    _write(con, res, own, t, ev.rn)
    t("fds.write")


def _restrict(res: fdresolve.Result, keep: np.ndarray) -> fdresolve.Result:
    """``res`` for the rows ``keep`` only: their records, and the chained records among
    them (with their sources)."""
    rid = np.where(keep, res.event_rid, fdstream.NO_RID)
    ref = keys.unique(rid[rid != fdstream.NO_RID])
    ch = np.isin(res.chained_rid, ref)
    src = res.src[ch]
    return fdresolve.Result(event_rid=rid, chained_rid=res.chained_rid[ch], src=src,
                            group=res.group, unknown=res.unknown[ch],
                            need=keys.unique(src[src != fdstream.NO_RID]))


class _Timer:
    """Adds the seconds since the previous call under a name (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.t
        self.t = now


def _to_rn(a: np.ndarray, rn: np.ndarray | None) -> np.ndarray:
    """Record ids of a subset's rows (ranks, >= 0; second records of pipe/socketpair rows:
    ``PAIR_BASE`` + rank) as scan positions (``PAIR_BASE`` + scan position; others
    unchanged)."""
    if rn is None:
        return a
    out = a.copy()
    m = (a >= 0) & (a < fdstream.PAIR_BASE)
    out[m] = rn[a[m]]
    m = a >= fdstream.PAIR_BASE
    if m.any():
        out[m] = rn[a[m] - fdstream.PAIR_BASE] + fdstream.PAIR_BASE
    return out


def _write(con: Any, res: fdresolve.Result, own: np.ndarray, t: _Timer,
           rn_map: np.ndarray | None = None) -> None:
    """``fc_rid`` and ``fc_fdrec`` (``fc_fdatt`` with the chained rows resolved).

    ``fc_rid(rn, rid, own)``: the rows (scan position ``rn``) that have a record or
    make their own (:data:`own_sql`); ``own`` when the record is the row's own
    (``rid = rn``: views compute those rows' ``rid`` without the table).
    ``rn_map``: the scan positions of the rows when ``res`` is about a subset
    (its ids are ranks in it, see ``Events.rn``).
    """

    rid = res.event_rid
    own_ok = own & (rid == np.arange(len(rid)))
    rn = np.flatnonzero((rid != fdstream.NO_RID) | own)
    r = _to_rn(rid[rn], rn_map)
    own_ok = own_ok[rn]
    if rn_map is not None:
        rn = rn_map[rn]
    con.register("fc_rid_arrow", pa.table({
        "rn": pa.array(rn), "rid": pa.array(r, mask=r == fdstream.NO_RID),
        "own": pa.array(own_ok)}))
    con.execute("CREATE OR REPLACE TEMP TABLE fc_rid AS SELECT * FROM fc_rid_arrow")
    con.unregister("fc_rid_arrow")
    t("fds.write_rid")
    con.execute("DROP TABLE IF EXISTS fc_fdrec; DROP TABLE fc_snapfd")
    keep = ~res.unknown
    crid = _to_rn(res.chained_rid[keep], rn_map)  # ascending; rows of no record dropped
    if not len(crid):
        con.execute("DELETE FROM fc_fdatt WHERE k <> 1; ALTER TABLE fc_fdatt RENAME TO fc_fdrec")
        _name_tuples(con)
        return
    # attribute a of resolved row x is the attribute a of row src[x, group[a]] (own, or a
    # source's); the chained rows' own ts, ev_tid and changed stay
    need = _to_rn(res.need, rn_map)
    con.register("fc_need_arrow", pa.table({"rid": pa.array(keys.unique(np.concatenate([need, crid])))}))
    att = con.sql(
        f"SELECT a.rid, a.ts, a.ev_tid, a.changed, {', '.join('a.' + c for c in ATTRS)} "
        "FROM fc_fdatt a SEMI JOIN fc_need_arrow n ON n.rid = a.rid"
    ).to_arrow_table()
    con.unregister("fc_need_arrow")
    t("fds.write_att")
    # row of att per rid (sorted here: sorting wide rows in DuckDB costs more)
    arid = att.column("rid").to_numpy()
    order = np.argsort(arid)
    arid = arid[order]

    def rows(r: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
        return pa.array(order[np.minimum(np.searchsorted(arid, r), len(arid) - 1)], mask=null)

    at = rows(crid)
    out = {"rid": att.column("rid").take(at), "k": pa.array(np.ones(len(crid), np.int32)),
           **{c: att.column(c).take(at) for c in ("ts", "ev_tid", "changed")}}
    src = _to_rn(res.src[keep], rn_map)
    take = {k: rows(src[:, k], src[:, k] == fdstream.NO_RID) for k in range(src.shape[1])}
    for j, a in enumerate(ATTRS):
        out[a] = att.column(a).take(take[res.group[j]])
    con.register("fc_chained_arrow", pa.table(out))
    t("fds.write_gather")
    con.execute(
        "DELETE FROM fc_fdatt WHERE k <> 1; "
        "INSERT INTO fc_fdatt BY NAME SELECT * FROM fc_chained_arrow; "
        "ALTER TABLE fc_fdatt RENAME TO fc_fdrec"
    )
    con.unregister("fc_chained_arrow")
    _name_tuples(con)


def _name_tuples(con: Any) -> None:
    """Name the socket records whose name depends on their resolved role (connect, sendto,
    recvfrom ... leave it empty, see :data:`fcap.analyze.fields.sockrole.NAME`): once
    here, so the views read ``fd.name`` as a column; ``fd.nameraw`` is the same name."""
    con.execute(f"UPDATE fc_fdrec SET name = {sockrole.NAME}, name_raw = {sockrole.NAME} "
                f"WHERE {sockrole.TUPLE_NAME}")
