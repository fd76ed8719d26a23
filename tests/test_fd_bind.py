"""Server sockets as libsinsp makes them: ``bind`` to a port, and the start snapshot.

libsinsp (parsers.cpp ``parse_bind_exit``) makes a socket bound to an IP address
with a port > 0 a server socket at once (``SCAP_FD_IPV4_SERVSOCK`` /
``IPV6_SERVSOCK``, role server): ``fd.sip``/``fd.sport`` are the bound address,
``fd.cip``, ``fd.cport``, ``fd.lip``, ``fd.rip``, ``fd.lport``, ``fd.rport`` are
missing (sinsp_filtercheck_fd.cpp reads them from tuples only), ``fd.is_server``
is true and ``fd.l4proto`` the socket's protocol. An IPv4-mapped address or
``::`` (``sinsp_utils::is_ipv4_mapped_ipv6``) makes it an IPv4 server socket.
Every bind names the socket after its address parameter as ``sinsp_evt`` prints
it (``ipv4serveraddr_to_string``, ``ipv6serveraddr_to_string``: ``:::22``).
``listen`` has no parser: it changes nothing. A tuple later (``update_fd`` at
sendto/recvfrom, ``fill_client_socket_info`` at connect) makes it a plain socket
that keeps the server role: the client end is named first. A socket without a
role has ``fd.l4proto`` ``<NA>`` (``sinsp_fdinfo::get_l4proto``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from fields_fixture import bash_world, build, fields, open_events

COLS = ["evt.type", "fd.num", "fd.name", "fd.type", "fd.typechar", "fd.sockfamily",
        "fd.l4proto", "fd.is_server", "fd.cip", "fd.cport", "fd.sip", "fd.sport", "fd.lip",
        "fd.rip", "fd.lport", "fd.rport"]


def _srv(evt: str, fd: int, name: str, typ: str, sip: str, sport: int, l4: str) -> tuple:
    """A server socket: the bound address and nothing else."""
    return (evt, fd, name, typ, typ[-1], "ip", l4, True, None, None, sip, sport, None, None,
            None, None)


def _none(evt: str, fd: int, name: str, typ: str) -> tuple:
    """An IP socket without a role: no address field, protocol <NA>."""
    return (evt, fd, name, typ, typ[-1], "ip", "<NA>", False, None, None, None, None, None,
            None, None, None)


# --- hand-built rows ---------------------------------------------------------------------


def test_udp_server_bound_to_a_port_is_a_server_socket_at_bind() -> None:
    """A DNS-like UDP server: bind, recvfrom a client, sendto it. The server socket
    becomes a server-role socket with the client's tuple at the first datagram."""
    r = bash_world()
    r.ev("socket", 100, res=4, ppid=1, a0=2, a1=2, a2=0, fd=4)
    r.ev("bind", 100, res=0, ppid=1, fd=4, a0=4, sock_family=2, sock_type=2, l4proto=17,
         laddr="10.0.0.5", lport=53)
    r.ev("recvfrom", 100, res=30, ppid=1, fd=4, a0=4, sock_family=2, sock_type=2, l4proto=17,
         laddr="10.0.0.5", lport=53, raddr="10.9.9.9", rport=40000)
    r.ev("sendto", 100, res=60, ppid=1, fd=4, a0=4, sock_family=2, sock_type=2, l4proto=17,
         laddr="10.0.0.5", lport=53, raddr="10.9.9.9", rport=40000)
    r.ev("recvfrom", 100, res=30, ppid=1, fd=4, a0=4, sock_family=2, sock_type=2, l4proto=17,
         laddr="10.0.0.5", lport=53, raddr="10.7.7.7", rport=41000)
    con = build(r)
    tup = ("ipv4", "4", "ip", "udp", True, "10.9.9.9", 40000, "10.0.0.5", 53, "10.0.0.5",
           "10.9.9.9", 53, 40000)
    tup2 = ("ipv4", "4", "ip", "udp", True, "10.7.7.7", 41000, "10.0.0.5", 53, "10.0.0.5",
            "10.7.7.7", 53, 41000)
    assert fields(con, COLS, "e.fd = 4") == [
        _none("socket", 4, "", "ipv4"),
        _srv("bind", 4, "10.0.0.5:53", "ipv4", "10.0.0.5", 53, "udp"),
        ("recvfrom", 4, "10.9.9.9:40000->10.0.0.5:53", *tup),
        ("sendto", 4, "10.9.9.9:40000->10.0.0.5:53", *tup),
        ("recvfrom", 4, "10.7.7.7:41000->10.0.0.5:53", *tup2),
    ]
    assert fields(con, ["fd.name_changed"], "e.evt_type = 'bind'") == [(True,)]


def test_dual_stack_tcp_server_on_unspecified_is_an_ipv4_server_socket() -> None:
    """sshd's ``bind(::, 22)``: an IPv4 server socket named ``:::22`` with server address
    0.0.0.0; listen changes nothing; the accepted IPv4 client is an IPv4 tuple."""
    r = bash_world()
    r.ev("socket", 100, res=3, ppid=1, a0=10, a1=1, a2=6, fd=3)
    r.ev("bind", 100, res=0, ppid=1, fd=3, a0=3, sock_family=10, sock_type=1, l4proto=6,
         laddr="::", lport=22)
    r.ev("listen", 100, res=0, ppid=1, fd=3, a0=3, a1=128, sock_family=10, sock_type=1,
         l4proto=6, laddr="::", lport=22)
    r.ev("accept", 100, res=4, ppid=1, a0=3, fd=4, sock_family=10, sock_type=1, l4proto=6,
         laddr="10.0.0.5", lport=22, raddr="10.9.9.9", rport=54666)
    r.ev("close", 100, res=0, ppid=1, fd=3, a0=3)
    con = build(r)
    srv = ("ipv4", "0.0.0.0", 22, "tcp")
    assert fields(con, COLS) == [
        _none("socket", 3, "", "ipv6"),
        _srv("bind", 3, ":::22", *srv),
        _srv("listen", 3, ":::22", *srv),
        ("accept", 4, "10.9.9.9:54666->10.0.0.5:22", "ipv4", "4", "ip", "tcp", True,
         "10.9.9.9", 54666, "10.0.0.5", 22, "10.0.0.5", "10.9.9.9", 22, 54666),
        _srv("close", 3, ":::22", *srv),
    ]
    assert fields(con, ["fd.name_changed"], "e.evt_type IN ('bind', 'listen')") == [
        (True,), (False,)]
    # fd.ip / fd.port of a server socket: its server address (compare_ip, compare_port)
    assert fields(con, ["evt.type"], "e.fd = 3 AND e.evt_type = 'listen' AND "
                  "list_contains(list_filter([e.fd_cip, e.fd_sip], lambda x: x IS NOT NULL), "
                  "'0.0.0.0')") == [("listen",)]


def test_ipv6_and_mapped_binds() -> None:
    """A real IPv6 address makes an IPv6 server socket; a mapped one an IPv4 server socket
    named with the IPv6 text libsinsp prints (inet_ntop: ``::ffff:a.b.c.d``)."""
    r = bash_world()
    r.ev("socket", 100, res=3, ppid=1, a0=10, a1=1, a2=0, fd=3)
    r.ev("bind", 100, res=0, ppid=1, fd=3, a0=3, sock_family=10, sock_type=1, l4proto=6,
         laddr="::1", lport=8080)
    r.ev("socket", 100, res=5, ppid=1, a0=10, a1=2, a2=0, fd=5)
    r.ev("bind", 100, res=0, ppid=1, fd=5, a0=5, sock_family=10, sock_type=2, l4proto=17,
         laddr="127.0.0.1", lport=5353)
    con = build(r)
    assert fields(con, COLS, "e.evt_type = 'bind'") == [
        _srv("bind", 3, "::1:8080", "ipv6", "::1", 8080, "tcp"),
        _srv("bind", 5, "::ffff:127.0.0.1:5353", "ipv4", "127.0.0.1", 5353, "udp"),
    ]


def test_bind_to_port_0_names_the_socket_only_and_listen_makes_no_server() -> None:
    """A client binding its source address (port 0), then connecting; a socket listening
    without a bound port: neither is a server socket (listen has no parser)."""
    r = bash_world()
    r.ev("socket", 100, res=4, ppid=1, a0=2, a1=1, a2=6, fd=4)
    r.ev("bind", 100, res=0, ppid=1, fd=4, a0=4, sock_family=2, sock_type=1, l4proto=6,
         laddr="10.0.0.5", lport=0)
    r.ev("connect", 100, res=0, ppid=1, fd=4, a0=4, sock_family=2, sock_type=1, l4proto=6,
         laddr="10.0.0.5", lport=51000, raddr="93.184.216.34", rport=80)
    r.ev("socket", 100, res=5, ppid=1, a0=2, a1=1, a2=6, fd=5)
    r.ev("listen", 100, res=0, ppid=1, fd=5, a0=5, a1=5, sock_family=2, sock_type=1,
         l4proto=6, laddr="0.0.0.0", lport=39123)
    con = build(r)
    assert fields(con, COLS, "e.evt_type <> 'socket'") == [
        _none("bind", 4, "10.0.0.5:0", "ipv4"),
        ("connect", 4, "10.0.0.5:51000->93.184.216.34:80", "ipv4", "4", "ip", "tcp", False,
         "10.0.0.5", 51000, "93.184.216.34", 80, "10.0.0.5", "93.184.216.34", 51000, 80),
        _none("listen", 5, "", "ipv4"),
    ]


def test_connect_of_a_server_socket() -> None:
    """fill_client_socket_info: a TCP server socket that connects (a client with a fixed
    source port) is named client end first; a UDP one keeps the server role and is
    named with the peer first (swap_addresses)."""
    r = bash_world()
    r.ev("socket", 100, res=4, ppid=1, a0=2, a1=1, a2=6, fd=4)
    r.ev("bind", 100, res=0, ppid=1, fd=4, a0=4, sock_family=2, sock_type=1, l4proto=6,
         laddr="0.0.0.0", lport=1023)
    r.ev("connect", 100, res=0, ppid=1, fd=4, a0=4, sock_family=2, sock_type=1, l4proto=6,
         laddr="10.0.0.5", lport=1023, raddr="10.0.0.9", rport=514)
    r.ev("socket", 100, res=5, ppid=1, a0=2, a1=2, a2=17, fd=5)
    r.ev("bind", 100, res=0, ppid=1, fd=5, a0=5, sock_family=2, sock_type=2, l4proto=17,
         laddr="0.0.0.0", lport=69)
    r.ev("connect", 100, res=0, ppid=1, fd=5, a0=5, sock_family=2, sock_type=2, l4proto=17,
         laddr="10.0.0.5", lport=69, raddr="10.0.0.9", rport=40000)
    con = build(r)
    assert fields(con, COLS, "e.evt_type = 'connect'") == [
        ("connect", 4, "10.0.0.5:1023->10.0.0.9:514", "ipv4", "4", "ip", "tcp", False,
         "10.0.0.5", 1023, "10.0.0.9", 514, "10.0.0.5", "10.0.0.9", 1023, 514),
        ("connect", 5, "10.0.0.9:40000->10.0.0.5:69", "ipv4", "4", "ip", "udp", True,
         "10.0.0.9", 40000, "10.0.0.5", 69, "10.0.0.5", "10.0.0.9", 69, 40000),
    ]


def test_dual_stack_udp_server_receiving_from_an_ipv4_client() -> None:
    """``bind(::, 53)`` then a datagram from 10.1.2.3: the tuple's ends are mapped ('::'
    for the unbound local address), so the socket becomes an IPv4 one (update_fd)."""
    r = bash_world()
    r.ev("socket", 100, res=4, ppid=1, a0=10, a1=2, a2=0, fd=4)
    r.ev("bind", 100, res=0, ppid=1, fd=4, a0=4, sock_family=10, sock_type=2, l4proto=17,
         laddr="::", lport=53)
    r.ev("recvmsg", 100, res=30, ppid=1, fd=4, a0=4, sock_family=10, sock_type=2, l4proto=17,
         laddr="::", lport=53, raddr="10.1.2.3", rport=40000)
    con = build(r)
    # (fd.is_server left out of the tuple row: libsinsp asks whether 0.0.0.0 is an address
    # of the host's interfaces)
    cols = [c for c in COLS if c != "fd.is_server"]
    assert fields(con, cols, "e.evt_type <> 'socket'") == [
        tuple(v for i, v in enumerate(_srv("bind", 4, ":::53", "ipv4", "0.0.0.0", 53, "udp"))
              if i != 7),
        ("recvmsg", 4, "10.1.2.3:40000->0.0.0.0:53", "ipv4", "4", "ip", "udp",
         "10.1.2.3", 40000, "0.0.0.0", 53, "0.0.0.0", "10.1.2.3", 53, 40000),
    ]


def test_unix_bind_names_the_socket_with_its_path() -> None:
    r = bash_world()
    r.ev("socket", 100, res=4, ppid=1, a0=1, a1=1, a2=0, fd=4)
    r.ev("bind", 100, res=0, ppid=1, fd=4, a0=4, sock_family=1, sock_type=1,
         unix_path="/run/app.sock")
    r.ev("listen", 100, res=0, ppid=1, fd=4, a0=4, a1=5, sock_family=1, sock_type=1,
         unix_path="/run/app.sock")
    con = build(r)
    assert fields(con, ["evt.type", "fd.name", "fd.type", "fd.is_server", "fd.sip"],
                  "e.fd = 4") == [
        ("socket", "", "unix", False, None),
        ("bind", "/run/app.sock", "unix", False, None),
        ("listen", "/run/app.sock", "unix", False, None),
    ]


def test_snapshot_sockets_as_the_proc_scan_makes_them() -> None:
    """libscap's /proc scan: a socket without a remote address is a server socket with no
    role (fd.sip missing, fd.sport its port); an IPv4 tuple whose local port is a server
    port is a server one (fix_sockets_coming_from_proc), else a client; an IPv6 tuple has
    no role; an AF_INET6 server socket stays IPv6."""
    r = bash_world()
    sock = dict(pid=100, type="ipv4", sock_family=2)
    r.add("fds", fd=20, name="0.0.0.0:22", l4proto=6, laddr="0.0.0.0", lport=22,
          listening=True, **sock)
    r.add("fds", fd=21, name="10.0.0.5:22->10.0.0.9:50000", l4proto=6, laddr="10.0.0.5",
          lport=22, raddr="10.0.0.9", rport=50000, listening=False, **sock)
    r.add("fds", fd=22, name="0.0.0.0:5353->0.0.0.0:0", l4proto=17, laddr="0.0.0.0",
          lport=5353, raddr="0.0.0.0", rport=0, listening=False, **sock)
    v6 = dict(pid=100, type="ipv6", sock_family=10, l4proto=6)
    r.add("fds", fd=23, name=":::80", laddr="::", lport=80, listening=True, **v6)
    r.add("fds", fd=24, name="2001:db8::1:443->2001:db8::2:50001", laddr="2001:db8::1",
          lport=443, raddr="2001:db8::2", rport=50001, listening=False, **v6)
    for fd in range(20, 25):
        r.ev("read", 100, res=1, ppid=1, fd=fd, a0=fd)
    r.ev("read", 100, res=1, ppid=1, fd=7, a0=7)
    con = build(r)
    got = fields(con, [*COLS, "fd.connected"], "e.evt_type = 'read'")
    assert got == [
        ("read", 20, "0.0.0.0:22", "ipv4", "4", "ip", "tcp", True, None, None, None, 22,
         None, None, None, None, False),
        ("read", 21, "10.0.0.9:50000->10.0.0.5:22", "ipv4", "4", "ip", "tcp", True,
         "10.0.0.9", 50000, "10.0.0.5", 22, "10.0.0.5", "10.0.0.9", 22, 50000, True),
        ("read", 22, "0.0.0.0:5353", "ipv4", "4", "ip", "udp", True, None, None, None, 5353,
         None, None, None, None, False),
        ("read", 23, ":::80", "ipv6", "6", "ip", "tcp", True, None, None, None, 80,
         None, None, None, None, False),
        (*_none("read", 24, "2001:db8::1:443->2001:db8::2:50001", "ipv6"), True),
        ("read", 7, "10.0.0.5:40000->1.2.3.4:443", "ipv4", "4", "ip", "tcp", False,
         "10.0.0.5", 40000, "1.2.3.4", 443, "10.0.0.5", "1.2.3.4", 40000, 443, True),
    ]


# --- live recording ----------------------------------------------------------------------

_CHILD = r"""
import random, socket
def bound(family, kind, host):
    s = socket.socket(family, kind)
    while True:  # a port > 0 of our own (a failed bind makes no record)
        port = random.randint(20000, 60000)
        try:
            s.bind((host, port))
            return s, port
        except OSError:
            pass
u, p = bound(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1")
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.sendto(b"q", ("127.0.0.1", p))
data, peer = u.recvfrom(100)
u.sendto(b"a", peer)
c.recvfrom(100)
s6, q = bound(socket.AF_INET6, socket.SOCK_STREAM, "::")
s6.listen(1)
cl = socket.create_connection(("127.0.0.1", q))
a, apeer = s6.accept()
print(u.fileno(), p, peer[1], s6.fileno(), q, a.fileno(), apeer[1], flush=True)
a.close(); cl.close(); s6.close(); c.close(); u.close()
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> dict:
    from live_support import record_while

    out = tmp_path_factory.mktemp("bind") / "live.parquet"
    res: dict = {}

    def work() -> None:
        py = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE,
                              text=True)
        text, _ = py.communicate(timeout=30)
        assert py.returncode == 0
        res["pid"] = py.pid
        res["vals"] = [int(x) for x in text.split()]

    record_while(out, work)
    res["capture"] = out
    return res


@pytest.mark.live
def test_live_udp_server_on_loopback(live) -> None:
    """A recorded UDP server: bind(127.0.0.1, P) is a server socket; the datagram it
    receives gives it the client's tuple, client end first, with the server role."""
    ufd, p, cport = live["vals"][:3]
    con = open_events(live["capture"])
    cols = ["evt.type", "fd.name", "fd.type", "fd.typechar", "fd.sockfamily", "fd.l4proto",
            "fd.is_server", "fd.cip", "fd.cport", "fd.sip", "fd.sport"]
    got = fields(con, cols, f"e.proc_pid = {live['pid']} AND e.fd = {ufd} AND "
                 "e.evt_type IN ('socket', 'bind', 'recvfrom', 'sendto') AND e.res >= 0")
    # the last socket() on that fd number is the server's (earlier ones: interpreter start-up)
    got = got[max(i for i, g in enumerate(got) if g[0] == "socket"):]
    tup = (f"127.0.0.1:{cport}->127.0.0.1:{p}", "ipv4", "4", "ip", "udp", True, "127.0.0.1",
           cport, "127.0.0.1", p)
    assert got == [
        ("socket", "", "ipv4", "4", "ip", "<NA>", False, None, None, None, None),
        ("bind", f"127.0.0.1:{p}", "ipv4", "4", "ip", "udp", True, None, None, "127.0.0.1", p),
        ("recvfrom", *tup),
        ("sendto", *tup),
    ]
    # a server socket has no local/remote fields (they read a tuple only)
    assert fields(con, ["fd.lip", "fd.rip", "fd.lport", "fd.rport"],
                  f"e.proc_pid = {live['pid']} AND e.fd = {ufd} AND e.evt_type = 'bind'") == [
        (None, None, None, None)]


@pytest.mark.live
def test_live_dual_stack_tcp_server_accepting_an_ipv4_client(live) -> None:
    """A recorded TCP server bound to ('::', Q): an IPv4 server socket named ':::Q' with
    server address 0.0.0.0 from bind on (listen changes nothing); the accepted IPv4 client
    is an IPv4 tuple."""
    sfd, q, afd, acport = live["vals"][3:]
    con = open_events(live["capture"])
    cols = ["evt.type", "fd.num", "fd.name", "fd.type", "fd.typechar", "fd.l4proto",
            "fd.is_server", "fd.cip", "fd.cport", "fd.sip", "fd.sport", "fd.lip", "fd.rip"]
    srv = (sfd, f":::{q}", "ipv4", "4", "tcp", True, None, None, "0.0.0.0", q, None, None)
    got = fields(con, cols, f"e.proc_pid = {live['pid']} AND e.res >= 0 AND "
                 f"((e.fd = {sfd} AND e.evt_type IN ('bind', 'listen')) OR "
                 f"(e.fd = {afd} AND e.evt_type IN ('accept', 'accept4')))")
    got = got[max(i for i, g in enumerate(got) if g[0] == "bind"):]
    assert got == [
        ("bind", *srv),
        ("listen", *srv),
        (got[2][0], afd, f"127.0.0.1:{acport}->127.0.0.1:{q}", "ipv4", "4", "tcp", True,
         "127.0.0.1", acport, "127.0.0.1", q, "127.0.0.1", "127.0.0.1"),
    ]
    assert got[2][0] in ("accept", "accept4")


def test_socket_nameraw_is_its_name() -> None:
    """fd.nameraw of a connected socket is its name (libsinsp keeps no raw name for
    sockets): the tuple names written once the role is resolved (``fds._name_tuples``)
    are the raw names too, not the empty name the update rows carry."""
    from fcap.analyze.regress.runner import bundled_samples_dir

    con = open_events(bundled_samples_dir() / "reverse-shell")
    rows = con.execute("SELECT fd_name, fd_nameraw FROM events WHERE fd_name LIKE '%->%'"
                       ).fetchall()
    assert len(rows) > 10
    assert all(raw == name for name, raw in rows)
