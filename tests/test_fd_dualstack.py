"""AF_INET6 sockets talking IPv4 (dual stack) as libsinsp sees them.

libsinsp (parsers.cpp ``parse_accept_exit``, ``parse_connect_exit``, ``update_fd``)
checks both ends of an AF_INET6 tuple with ``sinsp_utils::is_ipv4_mapped_ipv6``
(``::ffff:a.b.c.d``, and ``::``): when both are mapped the descriptor becomes an
IPv4 one (``SCAP_FD_IPV4_SOCK``: fd.type ipv4, typechar 4, the IPv4 addresses,
``::`` as 0.0.0.0); otherwise it keeps IPv6 addresses, a mapped one printed as
``::ffff:a.b.c.d``. fcap's recorder writes a mapped address as IPv4 text.
"""

from __future__ import annotations

from fields_fixture import bash_world, build, fields

COLS = ["fd.num", "fd.name", "fd.type", "fd.typechar", "fd.cip", "fd.sip", "fd.sport",
        "fd.l4proto"]


def test_accept_of_a_mapped_pair_is_an_ipv4_descriptor() -> None:
    r = bash_world()
    r.ev("accept4", 100, res=8, ppid=1, a0=3, a3=0, fd=8, sock_family=10, l4proto=6,
         laddr="127.0.0.1", lport=22, raddr="127.0.0.1", rport=54666)
    r.ev("read", 100, res=3, ppid=1, fd=8, a0=8)
    con = build(r)
    row = ("127.0.0.1:54666->127.0.0.1:22", "ipv4", "4", "127.0.0.1", "127.0.0.1", 22, "tcp")
    assert fields(con, COLS) == [(8, *row), (8, *row)]


def test_unspecified_end_of_a_mapped_pair_is_0000() -> None:
    r = bash_world()
    r.ev("accept", 100, res=8, ppid=1, a0=3, fd=8, sock_family=10, l4proto=6,
         laddr="::", lport=8080, raddr="10.1.2.3", rport=40000)
    con = build(r)
    assert fields(con, COLS) == [
        (8, "10.1.2.3:40000->0.0.0.0:8080", "ipv4", "4", "10.1.2.3", "0.0.0.0", 8080, "tcp")]


def test_a_mapped_end_beside_a_real_ipv6_one_stays_ipv6() -> None:
    r = bash_world()
    r.ev("accept", 100, res=8, ppid=1, a0=3, fd=8, sock_family=10, l4proto=6,
         laddr="1.2.3.4", lport=443, raddr="2001:db8::7", rport=50000)
    con = build(r)
    assert fields(con, COLS) == [
        (8, "2001:db8::7:50000->::ffff:1.2.3.4:443", "ipv6", "6", "2001:db8::7",
         "::ffff:1.2.3.4", 443, "tcp")]


def test_connect_of_an_ipv6_socket_to_a_mapped_address_makes_it_ipv4() -> None:
    r = bash_world()
    r.ev("socket", 100, res=4, ppid=1, a0=10, a1=1, a2=6, fd=4)
    r.ev("connect", 100, res=0, ppid=1, fd=4, a0=4, sock_family=10, l4proto=6,
         laddr="10.0.0.5", lport=51000, raddr="93.184.216.34", rport=80)
    r.ev("write", 100, res=3, ppid=1, fd=4, a0=4)
    r.ev("socket", 100, res=5, ppid=1, a0=10, a1=1, a2=6, fd=5)
    r.ev("connect", 100, res=0, ppid=1, fd=5, a0=5, sock_family=10, l4proto=6,
         laddr="2001:db8::5", lport=51001, raddr="2001:db8::80", rport=80)
    r.ev("write", 100, res=3, ppid=1, fd=5, a0=5)
    con = build(r)
    v4 = ("10.0.0.5:51000->93.184.216.34:80", "ipv4", "4", "10.0.0.5", "93.184.216.34", 80,
          "tcp")
    v6 = ("2001:db8::5:51001->2001:db8::80:80", "ipv6", "6", "2001:db8::5", "2001:db8::80",
          80, "tcp")
    got = fields(con, COLS, "e.evt_type IN ('connect', 'write')")
    assert got == [(4, *v4), (4, *v4), (5, *v6), (5, *v6)]


def test_connect_on_a_descriptor_it_does_not_know_sets_no_type() -> None:
    """libsinsp's parse_connect_exit returns at once for a descriptor it does not know;
    fcap keeps the connect's own tuple (name, addresses) but sets no type for it."""
    r = bash_world()
    r.ev("connect", 100, res=0, ppid=1, fd=9, a0=9, sock_family=2, l4proto=6,
         laddr="10.0.0.5", lport=51000, raddr="93.184.216.34", rport=80)
    con = build(r)
    assert fields(con, ["fd.type", "fd.typechar"]) == [(None, None)]
