"""Attributes of the descriptor records, read from the capture in one scan (SQL).

Every raw row that makes a record (:data:`fcap.analyze.state.fds.record_sql`:
kinds 1 final, 3 dup, 4 update) gets its own attributes here; the snapshot's
descriptors (``raw_fds``) get records with negative ids. The rows are picked
by the record kinds numpy already holds (a registered column, positionally
joined), and every attribute is one ``CASE`` over a small syscall class code,
so the capture is scanned once and nothing wide is materialized on the way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.state import hosts
from fcap.analyze.state.fdstream import PAIR_BASE

O_CLOEXEC = 0o2000000
#: Descriptor-creating syscalls other than the open family, and their fd.type.
CREATES = {
    "eventfd": "event", "eventfd2": "event", "signalfd": "signalfd", "signalfd4": "signalfd",
    "epoll_create": "eventpoll", "epoll_create1": "eventpoll", "inotify_init": "inotify",
    "inotify_init1": "inotify", "timerfd_create": "timerfd", "bpf": "bpf",
    "userfaultfd": "userfaultfd", "io_uring_setup": "io_uring", "pidfd_open": "pidfd",
    "memfd_create": "memfd", "pipe": "pipe", "pipe2": "pipe", "socketpair": "unix",
}
#: The time of snapshot records (before every event).
TS_MIN = -(2**62)
OPENS = ("open", "openat", "openat2", "creat", "open_by_handle_at")
#: Syscall classes of record rows (the ``c`` column of the scan).
_OPEN, _SOCKET, _ACCEPT, _CONNECT, _BINDLISTEN, _CREATE, _DUP = range(1, 8)
_CLASS = {
    **{s: _OPEN for s in OPENS}, "socket": _SOCKET, "accept": _ACCEPT, "accept4": _ACCEPT,
    "connect": _CONNECT, "sendto": _CONNECT, "sendmsg": _CONNECT, "recvfrom": _CONNECT,
    "recvmsg": _CONNECT, "bind": _BINDLISTEN, **{s: _CREATE for s in CREATES}, "dup": _DUP,
    "dup2": _DUP,
    "dup3": _DUP, "fcntl": _DUP,
}


def open_flags(x: str = "") -> str:
    """The open flags of an open-family row (columns prefixed with ``x``)."""
    return (
        f"CASE {x}syscall WHEN 'open' THEN {x}a1 WHEN 'openat' THEN {x}a2 "
        f"WHEN 'openat2' THEN {x}flags_aux WHEN 'creat' THEN 577 ELSE {x}a2 END"
    )


def _family_type(fam: str) -> str:
    return (
        f"CASE {fam} WHEN 2 THEN 'ipv4' WHEN 10 THEN 'ipv6' WHEN 1 THEN 'unix' "
        f"WHEN 16 THEN 'netlink' ELSE NULL END"
    )


def _l4(sock_type: str, l4: str) -> str:
    return (
        f"CASE WHEN {l4} = 6 THEN 'tcp' WHEN {l4} = 17 THEN 'udp' WHEN {l4} IN (1, 58) THEN 'icmp' "
        f"WHEN ({sock_type} & 15) = 1 THEN 'tcp' WHEN ({sock_type} & 15) = 2 THEN 'udp' "
        f"WHEN ({sock_type} & 15) = 3 THEN 'raw' END"
    )


#: The syscall class of a row (NULL: none) by a hashed MAP lookup (a CASE would compare
#: the name with each of ~30 strings).
_CLASS_SQL = ("(MAP {" + ", ".join(f"'{s}': {c}" for s, c in _CLASS.items())
              + "})[CAST(syscall AS VARCHAR)]")


def _by_class(**values: str) -> str:
    """``CASE c WHEN <class> THEN <value> ... END`` (NULL for the classes not given)."""
    codes = {"open": _OPEN, "socket": _SOCKET, "accept": _ACCEPT, "connect": _CONNECT,
             "bindlisten": _BINDLISTEN, "create": _CREATE, "dup": _DUP}
    return "CASE c " + " ".join(f"WHEN {codes[k]} THEN {v}" for k, v in values.items()) + " END"


_IP_FAMILY = "CASE WHEN sock_family IN (2, 10) THEN 'ip' WHEN sock_family = 1 THEN 'unix' END"
# IPv4-mapped IPv6 (libsinsp sinsp_utils::is_ipv4_mapped_ipv6: ::ffff:a.b.c.d, and '::'): the
# recorder writes a mapped address as IPv4 text. When both ends of an AF_INET6 tuple are
# mapped, libsinsp makes the descriptor an IPv4 one (parse_accept_exit, parse_connect_exit,
# update_fd: SCAP_FD_IPV4_SOCK, the mapped addresses, '::' as 0.0.0.0); otherwise it keeps
# IPv6 addresses, a mapped one printed as ::ffff:a.b.c.d.
_V4PAIR = ("(sock_family = 10 AND (contains(laddr, '.') OR laddr = '::') "
           "AND (contains(raddr, '.') OR raddr = '::'))")


def _addr(x: str) -> str:
    """Address ``x`` of a socket tuple as libsinsp keeps it (see ``_V4PAIR``)."""
    return (f"CASE WHEN sock_family <> 10 THEN {x} "
            f"WHEN {_V4PAIR} THEN CASE WHEN {x} = '::' THEN '0.0.0.0' ELSE {x} END "
            f"WHEN contains({x}, '.') THEN '::ffff:' || {x} ELSE {x} END")


_TUPLE_TYPE = f"CASE WHEN sock_family = 2 OR {_V4PAIR} THEN 'ipv4' WHEN sock_family = 10 THEN 'ipv6' END"
# bind (libsinsp parse_bind_exit): an IP address with a port > 0 makes the socket a server
# socket (SCAP_FD_IPV4_SERVSOCK / IPV6_SERVSOCK, role server): its server address is the
# bound one, an IPv4-mapped address or '::' (is_ipv4_mapped_ipv6) makes it an IPv4 server
# socket ('::' as 0.0.0.0). Role 'servsock' marks it: the fields read lip/lport as the
# server address and nothing else (fcap.analyze.fields.sockrole). A later tuple (connect,
# sendto, recvfrom, update_fd) turns it into a plain socket with the server role.
_SERVSOCK = ("(syscall = 'bind' AND sock_family IN (2, 10) AND laddr IS NOT NULL "
             "AND lport > 0)")
_SERV_V4 = "(sock_family = 2 OR contains(laddr, '.') OR laddr = '::')"
# bind's name is its address as libsinsp prints the sockaddr parameter (every bind, any
# port): a.b.c.d:port, the IPv6 text (inet_ntop of the address given: '::ffff:a.b.c.d' for a
# mapped one, the recorder writes it as IPv4 text) ':port', or the unix path
_BIND_NAME = ("CASE WHEN syscall <> 'bind' THEN NULL WHEN sock_family = 1 THEN unix_path "
              "WHEN laddr IS NULL OR lport IS NULL THEN NULL "
              "WHEN sock_family = 2 THEN concat(laddr, ':', lport) "
              "WHEN sock_family = 10 THEN concat(CASE WHEN contains(laddr, '.') "
              "THEN '::ffff:' || laddr ELSE laddr END, ':', lport) END")
# UDP (connect keeps a server role on a UDP socket: fill_client_socket_info)
_UDP = "(l4proto = 17 OR (l4proto IS NULL AND (sock_type & 15) = 2))"
_F = "f"  # the open flags, computed once in the inner select
#: Per attribute, its value per syscall class (NULL for the classes not given).
_VALUES: dict[str, dict[str, str]] = {
    "fd_type": dict(
        open=f"CASE WHEN ({_F} & 65536) <> 0 THEN 'directory' ELSE 'file' END",
        socket=_family_type("a0"),
        accept=f"CASE WHEN sock_family IN (2, 10) THEN {_TUPLE_TYPE} "
               f"ELSE {_family_type('sock_family')} END",
        # libsinsp sets the type from the tuple at connect/sendto (update_fd): ipv4 for a
        # mapped pair on an AF_INET6 socket; the other cases keep the socket's own type
        # (and a descriptor libsinsp does not know is left alone: nothing is set then)
        connect=f"CASE WHEN {_V4PAIR} THEN 'ipv4' END",
        bindlisten=f"CASE WHEN {_SERVSOCK} THEN CASE WHEN {_SERV_V4} THEN 'ipv4' "
                   "ELSE 'ipv6' END END",
        create="CASE syscall " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in CREATES.items())
        + " END"),
    "name": dict(
        open="path", socket="''",
        accept="CASE WHEN sock_family = 1 THEN unix_path "
               f"ELSE concat({_addr('raddr')}, ':', rport, '->', {_addr('laddr')}, ':', lport) END",
        # an IP tuple's name depends on the role the socket already has (the client end
        # first: fill_client_socket_info, parse_read_exit/parse_write_exit swap for a
        # server): '' here, the fields write it from the resolved role and addresses
        connect="CASE sock_family WHEN 1 THEN unix_path WHEN 2 THEN '' WHEN 10 THEN '' END",
        bindlisten=_BIND_NAME,
        create="CASE WHEN syscall = 'memfd_create' THEN 'memfd:' || coalesce(path, '') "
               "ELSE '' END"),
    "name_raw": dict(open="coalesce(path_raw, path)", socket="''"),
    "flags": dict(open=_F, socket="a1",
                  create="CASE syscall WHEN 'pipe2' THEN a1 WHEN 'pipe' THEN 0 END"),
    # libsinsp: pipe2's O_CLOEXEC (parse_pipe_exit); socketpair sets no open flags
    "cloexec": dict(
        open=f"({_F} & {O_CLOEXEC}) <> 0", socket=f"(a1 & {O_CLOEXEC}) <> 0",
        accept=f"syscall = 'accept4' AND (a3 & {O_CLOEXEC}) <> 0",
        create=f"CASE WHEN syscall = 'pipe2' THEN (a1 & {O_CLOEXEC}) <> 0 ELSE false END",
        dup=f"(syscall = 'dup3' AND (a2 & {O_CLOEXEC}) <> 0) "
            "OR (syscall = 'fcntl' AND a1 = 1030)"),
    "l4proto": dict(
        socket=f"CASE WHEN a0 IN (2, 10) THEN {_l4('a1', 'a2')} END",
        accept=f"CASE WHEN sock_family IN (2, 10) THEN "
               f"{_l4('coalesce(sock_type, 1)', 'l4proto')} END",
        connect=f"CASE WHEN l4proto IS NOT NULL OR sock_type IS NOT NULL "
                f"THEN {_l4('coalesce(sock_type, 0)', 'l4proto')} END"),
    "family": dict(
        socket="CASE WHEN a0 IN (2, 10) THEN 'ip' WHEN a0 = 1 THEN 'unix' END",
        accept=_IP_FAMILY, connect=_IP_FAMILY,
        create="CASE WHEN syscall = 'socketpair' THEN 'unix' END"),
    "lip": dict(accept=_addr("laddr"), connect=_addr("laddr"),
                bindlisten=f"CASE WHEN {_SERVSOCK} THEN CASE WHEN sock_family = 10 "
                           "AND laddr = '::' THEN '0.0.0.0' ELSE laddr END END"),
    "lport": dict(accept="lport", connect="lport",
                  bindlisten=f"CASE WHEN {_SERVSOCK} THEN lport END"),
    "rip": dict(accept=_addr("raddr"), connect=_addr("raddr")),
    "rport": dict(accept="rport", connect="rport"),
    # connect makes a socket without a role a client (fill_client_socket_info); sendto,
    # sendmsg, recvfrom and recvmsg keep the role (update_fd; a socket without one is
    # guessed a client, see fcap.analyze.fields.sockrole), and so does a UDP connect (a UDP
    # server's connect keeps it a server). listen changes nothing (libsinsp has no parser
    # for it).
    "role": dict(accept="'server'",
                 connect=f"CASE WHEN syscall = 'connect' AND NOT coalesce({_UDP}, false) "
                         "THEN 'client' END",
                 bindlisten=f"CASE WHEN {_SERVSOCK} THEN 'servsock' END"),
    "connected": dict(open="false", socket="false", accept="true",
                      connect="syscall = 'connect'", create="false"),
    # a pipe's inode (flags_aux >> 32; 0 when the recorder could not read it, as libsinsp)
    "ino": dict(create="CASE WHEN syscall IN ('pipe', 'pipe2') "
                       "THEN CAST((flags_aux >> 32) & 4294967295 AS UBIGINT) END"),
}
#: (column, expression over the inner select) of the event records, in fc_fdrec order.
_EVENT_COLUMNS = (
    ("k", "CAST(mk AS INTEGER)"),
    ("ts", "ts"),
    ("ev_tid", "tid"),
    ("changed", f"c = 3 OR c = 4 OR c = {_BINDLISTEN}"),
    *((a, _by_class(**v)) for a, v in _VALUES.items()),
)
#: The attributes an update (connect, sendto, sendmsg, bind, listen) may set, other than
#: the family, in the order of their "set" bits in :func:`update_own_sql`.
UPDATE_OWN = ("name", "l4proto", "lip", "lport", "rip", "rport", "role", "connected", "fd_type")


def update_own_sql(when: Any) -> str:
    """Integer: bit i set when an update row sets attribute ``UPDATE_OWN[i]`` (not null).

    Over the raw columns; the same expressions as the attributes themselves.
    ``when(names)``: SQL condition "the syscall is one of ``names``".
    """
    parts = []
    for cls, names in (("connect", ("connect", "sendto", "sendmsg", "recvfrom", "recvmsg")),
                       ("bindlisten", ("bind",))):
        bits = " + ".join(
            f"CAST(({_VALUES[a][cls]}) IS NOT NULL AS INTEGER) * {1 << i}"
            for i, a in enumerate(UPDATE_OWN) if cls in _VALUES[a])
        parts.append(f"WHEN {when(names)} THEN {bits}")
    return "CASE " + " ".join(parts) + " ELSE 0 END"


#: fc_fdrec columns of an own record, as SQL over the inner select of :func:`_events_select`.
_OWN_COLUMNS = {
    **{name: e for name, e in _EVENT_COLUMNS if name not in ("k", "ev_tid")},
    "ev_tid": "tid",
}


def own_relation(src: str, attrs: Iterable[str], own: str, rfd: str) -> str:
    """``src`` with the descriptor record of the rows whose record is their own, from the row.

    Adds ``fc_fdk`` (true when the row's ``fd.*`` columns can be computed without
    the descriptor state: its record is its own, or it has no descriptor) and
    ``fc_r_<attr>`` per attribute of ``attrs`` (the ``fc_fdrec`` columns; NULL
    unless the record is the row's own), with the values :func:`build` gives
    the same record. ``own``/``rfd``: SQL of "makes its own record" and of the
    record's descriptor (``fds.own_sql``, ``fds``' ``rfd``), over ``src``'s columns.
    A row's own record is the record valid at the row when the row is about
    the descriptor it creates (``fd = rfd``) and belongs to a process.
    """
    cls = _CLASS_SQL
    cols = "".join(f", CASE WHEN fc_fdo THEN {_OWN_COLUMNS[a]} END AS fc_r_{a}"
                   for a in dict.fromkeys(attrs))
    return f"""(SELECT * EXCLUDE (c, {_F}, fc_fdo),
       pid IS NOT NULL AND (fc_fdo OR fd IS NULL) AS fc_fdk{cols}
FROM (SELECT *, {cls} AS c, {open_flags()} AS {_F},
             coalesce(({own}) AND fd = ({rfd}), false) AS fc_fdo
      FROM {src}))"""


def _mapped(x: str) -> str:
    """``x`` is IPv4 text (a mapped address) or ``::`` (sinsp_utils::is_ipv4_mapped_ipv6)."""
    return f"(contains({x}, '.') OR {x} = '::')"


def _v6text(x: str) -> str:
    """IPv6 text of an address of an AF_INET6 socket (a mapped one as ``::ffff:a.b.c.d``)."""
    return f"CASE WHEN contains({x}, '.') THEN '::ffff:' || {x} ELSE {x} END"


def _v4text(x: str) -> str:
    """IPv4 text of an end of a mapped pair (``::`` is 0.0.0.0)."""
    return f"CASE WHEN {x} = '::' THEN '0.0.0.0' ELSE {x} END"


# The start snapshot's IP sockets as libscap's /proc scan and libsinsp make them
# (scap_fds.c parse_ipv4/ipv6_socket_table_line, sinsp_threadinfo::add_fd_from_scap,
# fix_sockets_coming_from_proc):
# * no remote address (0.0.0.0, or '::' for an AF_INET6 one; a listener): a server socket
#   (SCAP_FD_IPV4/IPV6_SERVSOCK) without a role ('servsock0': fd.sip missing, fd.sport the
#   port); an AF_INET6 one stays IPv6 (no mapped conversion), named by its address;
# * an IPv4 tuple (both ends mapped on an AF_INET6 one): the server role when its local
#   port is the port of a server socket of the snapshot (addresses swapped), else client;
# * an IPv6 tuple: no role ('none': no client/server/local/remote fields);
# * a TCP tuple is connected (FLAGS_SOCKET_CONNECTED), a UDP one is not.
_SNAP_IP = "(f.type IN ('ipv4', 'ipv6') AND f.sock_family IN (2, 10) AND f.laddr IS NOT NULL)"
_SNAP_SRV = ("(f.listening OR f.raddr IS NULL OR (f.sock_family = 2 AND f.raddr = '0.0.0.0') "
             "OR (f.sock_family = 10 AND f.raddr = '::'))")
_SNAP_V4 = f"(f.sock_family = 2 OR ({_mapped('f.laddr')} AND {_mapped('f.raddr')}))"
_SNAP_IPCOLS = f"""
  SELECT *,
         CASE WHEN NOT ip THEN o_role WHEN srv THEN 'servsock0' WHEN NOT v4 THEN 'none'
              WHEN server_port THEN 'server' ELSE 'client' END AS s_role,
         CASE WHEN NOT ip THEN laddr WHEN srv AND sock_family = 10 THEN {_v6text('laddr')}
              WHEN srv OR sock_family = 2 THEN laddr WHEN v4 THEN {_v4text('laddr')}
              ELSE {_v6text('laddr')} END AS s_lip,
         CASE WHEN NOT ip THEN raddr WHEN srv THEN NULL WHEN sock_family = 2 THEN raddr
              WHEN v4 THEN {_v4text('raddr')} ELSE {_v6text('raddr')} END AS s_rip
  FROM (SELECT f.*, coalesce({_SNAP_IP}, false) AS ip,
               coalesce({_SNAP_IP} AND {_SNAP_SRV}, false) AS srv,
               coalesce({_SNAP_V4}, false) AS v4, sp.lport IS NOT NULL AS server_port,
               CASE WHEN f.listening THEN 'server'
                    WHEN f.raddr IS NOT NULL AND f.type IN ('ipv4', 'ipv6') THEN 'client'
               END AS o_role
        FROM fc_snapfd f
        LEFT JOIN (SELECT DISTINCT f.host, f.lport FROM fc_snapfd f
                   WHERE {_SNAP_IP} AND {_SNAP_SRV}) sp
          ON sp.host IS NOT DISTINCT FROM f.host AND sp.lport = f.lport)"""
_SNAPSHOT = f"""
SELECT f.rid, 1 AS k, {TS_MIN}::BIGINT AS ts, CAST(NULL AS INTEGER) AS ev_tid, false AS changed,
       CASE WHEN NOT f.ip THEN f.type WHEN f.sock_family = 2 OR (NOT f.srv AND f.v4)
            THEN 'ipv4' ELSE 'ipv6' END AS fd_type,
       CASE WHEN NOT f.ip THEN f.name
            WHEN f.srv THEN concat(f.s_lip, ':', f.lport)
            WHEN f.s_role = 'server' THEN concat(f.s_rip, ':', f.rport, '->', f.s_lip, ':', f.lport)
            ELSE concat(f.s_lip, ':', f.lport, '->', f.s_rip, ':', f.rport) END AS name,
       f.name AS name_raw, f.flags,
       coalesce((f.flags & {O_CLOEXEC}) <> 0, false) AS cloexec,
       CASE f.l4proto WHEN 6 THEN 'tcp' WHEN 17 THEN 'udp' WHEN 1 THEN 'icmp'
            WHEN 255 THEN 'raw' END AS l4proto,
       CASE WHEN f.type IN ('ipv4', 'ipv6') THEN 'ip' WHEN f.type = 'unix' THEN 'unix'
       END AS family,
       f.s_lip AS lip, f.lport, f.s_rip AS rip, CASE WHEN NOT f.srv THEN f.rport END AS rport,
       f.s_role AS role,
       CASE WHEN f.ip THEN NOT f.srv AND coalesce(f.l4proto = 6, false)
            ELSE f.raddr IS NOT NULL END AS connected, f.ino
FROM ({_SNAP_IPCOLS}) f"""


def _events_select(subset: bool = False) -> str:
    cls = _CLASS_SQL
    cols = ", ".join(f"{e} AS {name}" for name, e in _EVENT_COLUMNS)
    return f"""
SELECT rid, {cols}
FROM (SELECT *, {cls} AS c, {open_flags()} AS {_F}
      FROM (SELECT {'m.rn' if subset else 'm.rowid'} AS rid, m.k AS mk, x.ts, x.tid,
                   CAST(x.syscall AS VARCHAR) AS syscall,
                   x.a0, x.a1, x.a2, x.a3, x.flags_aux, CAST(x.path AS VARCHAR) AS path,
                   CAST(x.path_raw AS VARCHAR) AS path_raw, x.sock_family, x.sock_type,
                   x.l4proto, CAST(x.laddr AS VARCHAR) AS laddr, x.lport,
                   CAST(x.raddr AS VARCHAR) AS raddr, x.rport,
                   CAST(x.unix_path AS VARCHAR) AS unix_path
            FROM {_KIND_SOURCE[subset]}))"""


#: How the record rows are read: by position (every row has a kind), or by scan
#: position (the record rows of a subset, see :func:`register_kinds`).
_KIND_SOURCE = {
    False: "fc_raw x POSITIONAL JOIN fc_fdkind m WHERE m.k > 0",
    True: "raw_events_rn x JOIN fc_fdkind m ON m.rn = x._rn",
}


def snapshot(con: Any) -> None:
    """``fc_snapfd``: the snapshot's descriptors of the snapshot instances, ``rid`` < 0."""
    fds = hosts.rel(con, "raw_fds", ("pid",), res=False)  # several hosts: host pids
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_snapfd AS
        SELECT -row_number() OVER (ORDER BY i.pkey, f.fd, f.name) AS rid, i.pkey, f.*
        FROM {fds} f JOIN fc_pinst i ON i.pid = f.pid AND i.kind = 'snap'
        """
    )


def register_kinds(con: Any, kind: np.ndarray, rn: np.ndarray | None = None,
                   pair: np.ndarray | None = None) -> bool:
    """``fc_fdkind``: per raw row (scan order, ``rowid``) its record kind if 1, 3 or 4, else 0.

    With ``rn`` (the scan positions of the rows ``kind`` is about, a subset):
    ``fc_fdkind(rn, k)`` for the record rows only.
    A DuckDB table, not a registered Arrow table: scanning Python objects takes
    the GIL, which :func:`build` must not need while it runs beside numpy.
    ``pair`` (per row): the rows that also make a second record (pipe/socketpair);
    they go to ``fc_fdpair(rid)`` when there are any. Returns whether there are.
    """
    rec = (kind == 1) | (kind == 3) | (kind == 4)
    if rn is None:
        t = pa.table({"k": pa.array(np.where(rec, kind, 0).astype(np.int8))})
    else:
        t = pa.table({"rn": pa.array(rn[rec]), "k": pa.array(kind[rec].astype(np.int8))})
    pos = np.flatnonzero(pair) if pair is not None else np.zeros(0, np.int64)
    tables = [("fc_fdkind", t)]
    if len(pos):
        tables.append(("fc_fdpair", pa.table({"rid": pa.array(pos if rn is None else rn[pos])})))
    for name, table in tables:
        con.register("fc_kind_arrow", table)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM fc_kind_arrow")
        finally:
            con.unregister("fc_kind_arrow")
    return bool(len(pos))


def build(con: Any, subset: bool = False, pairs: bool = False) -> None:
    """``fc_fdatt``: every record's own attributes (needs ``fc_snapfd`` and ``fc_fdkind``;
    ``subset``: as :func:`register_kinds` made it with ``rn``; ``pairs``: ``fc_fdpair``
    exists: the second records of pipe/socketpair rows, with the first one's attributes
    and id :data:`PAIR_BASE` + the row's)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE fc_fdatt AS {_SNAPSHOT} UNION ALL "
        f"{_events_select(subset)}; DROP TABLE fc_fdkind"
    )
    if pairs:
        con.execute(
            f"INSERT INTO fc_fdatt SELECT * REPLACE (rid + {PAIR_BASE} AS rid) FROM fc_fdatt "
            "WHERE rid IN (SELECT rid FROM fc_fdpair); DROP TABLE fc_fdpair"
        )
