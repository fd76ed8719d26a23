"""SQL of the socket fields that depend on a descriptor's role (fd.cip, fd.sip, fd.name ...).

The descriptor records (:mod:`fcap.analyze.state.fdattr`, alias ``r``) keep a
socket's local and remote ends (``lip``/``lport``, ``rip``/``rport``) and a role,
as libsinsp's ``sinsp_fdinfo`` keeps a type, a tuple and role flags:

* ``'client'`` / ``'server'``: a socket with a tuple (``SCAP_FD_IPV4_SOCK`` /
  ``IPV6_SOCK``) and that role;
* ``'servsock'``: a server socket made by ``bind`` to a port > 0
  (``parse_bind_exit``: ``SCAP_FD_IPV4_SERVSOCK`` / ``IPV6_SERVSOCK``, role
  server); ``lip``/``lport`` hold its server address;
* ``'servsock0'``: a server socket of the start snapshot (no remote address in
  /proc: ``scap_fds.c``), which libsinsp gives no role;
* ``'none'``: a snapshot IPv6 tuple (libsinsp gives it no role);
* NULL: no role yet (``socket``, a ``bind`` to port 0).

An update that brings a tuple (sendto, sendmsg, recvfrom, recvmsg, a UDP
connect) keeps the role the socket had: a server socket with a tuple is a
server one, a socket without a role is guessed a client (``update_fd``,
``set_net_role_by_guessing``), so the effective role (:data:`ROLE`) is read
from the role and whether a remote end is known.
"""

from __future__ import annotations


def _role(x: str) -> str:
    """The effective role of the record whose columns are prefixed ``x``: 'client',
    'server', 'servsock', 'servsock0', 'none' or NULL."""
    return (f"(CASE WHEN {x}rip IS NULL THEN {x}role WHEN {x}role IN ('server', 'servsock') "
            f"THEN 'server' WHEN {x}role = 'none' THEN 'none' ELSE 'client' END)")


#: The effective role of the view's record ``r``.
ROLE = _role("r.")

#: The records named here (columns of ``fc_fdrec``): an IP tuple whose record left its
#: name empty (fdattr: connect, sendto, recvfrom ... name the tuple by the role the
#: socket has then, known once the records are resolved).
TUPLE_NAME = "(name = '' AND rip IS NOT NULL AND family = 'ip')"

#: fd.name of such a record (columns of ``fc_fdrec``): the client end first, the server
#: end first for a server (libsinsp ``sockinfo_to_str`` after ``swap_addresses``).
#: Written into the records once they are resolved (``fds._name_tuples``): views read
#: ``r.name``.
NAME = (f"CASE WHEN {_role('')} = 'server' THEN concat(rip, ':', rport, '->', lip, ':', lport) "
        "ELSE concat(lip, ':', lport, '->', rip, ':', rport) END")


def _by_role(**values: str) -> str:
    return f"CASE {ROLE} " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in values.items()) + " END"


def _tuple_end(x: str) -> str:
    """fd.lip/rip/lport/rport: a socket with a tuple and a role (libsinsp returns nothing
    for a server socket and for a socket without a role)."""
    return f"CASE WHEN r.family = 'ip' AND {ROLE} IN ('client', 'server') THEN r.{x} END"


#: Column name -> SQL, for the columns.py table.
COLUMNS = {
    "fd_cip": _by_role(client="r.lip", server="r.rip"),
    "fd_sip": _by_role(client="r.rip", server="r.lip", servsock="r.lip"),
    "fd_cport": _by_role(client="r.lport", server="r.rport"),
    # libsinsp's TYPE_SERVERPORT reads a server socket's port with or without a role
    "fd_sport": _by_role(client="r.rport", server="r.lport", servsock="r.lport",
                         servsock0="r.lport"),
    "fd_lip": _tuple_end("lip"),
    "fd_rip": _tuple_end("rip"),
    "fd_lport": _tuple_end("lport"),
    "fd_rport": _tuple_end("rport"),
    # TYPE_L4PROTO (sinsp_fdinfo::get_l4proto): '<NA>' for an IP socket without a role
    # (a raw one excepted); a server socket's protocol is the socket's
    "fd_l4proto": "CASE WHEN r.fd_type IS NOT NULL THEN CASE WHEN r.family = 'ip' AND "
                  f"coalesce({ROLE}, 'none') = 'none' AND r.l4proto IS DISTINCT FROM 'raw' "
                  "THEN '<NA>' ELSE coalesce(r.l4proto, '<NA>') END END",
}
#: fd.is_server (TYPE_IS_SERVER): true for a server socket; for a socket with a tuple
#: libsinsp asks whether the server address is one of the host's (fcap: the server role);
#: false for the other sockets (unix ones included).
IS_SERVER = ("CASE WHEN r.family IS NOT NULL THEN coalesce(r.family = 'ip' AND "
             f"{ROLE} IN ('server', 'servsock', 'servsock0'), false) END")
