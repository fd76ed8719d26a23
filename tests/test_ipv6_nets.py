"""IPv6 networks in ``ipnet`` checks (``fd.net``, ``fd.cnet``, ``fd.snet``, ``fd.lnet``,
``fd.rnet``), evaluated in DuckDB and checked against Python's :mod:`ipaddress`.

The oracle follows libsinsp: ``ipv6net::in_cidr`` (tuples.cpp) compares the first
prefix-length bits of the address; ``flt_compare`` for ``PT_IPNET`` (filter_compare.cpp)
makes an address of the other family false for ``=``/``in`` and true for ``!=``; a
field that cannot be extracted makes every check false (so ``not <check>`` is true).
Address texts are read as ``inet_pton`` reads them: ``::`` anywhere, 1-4 digit groups
in either case, a dotted IPv4 tail; anything else is not an IPv6 address.
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from fcap.analyze.compile import ConditionCompileError
from fcap.analyze.compile.ruleset import compile_condition
from fields_fixture import ipv6_server_world, write_capture

import fcap

Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
COLUMNS = ("fd_cip", "fd_sip", "fd_lip", "fd_rip")
FIELD_COLUMN = {"fd.cnet": "fd_cip", "fd.snet": "fd_sip", "fd.lnet": "fd_lip", "fd.rnet": "fd_rip"}
PREFIXES = (1, 7, 8, 15, 16, 63, 64, 65, 127, 128)


# -- oracle ----------------------------------------------------------------------------


def parse(text: str | None) -> Addr | str | None:
    """The address a column text holds (None: missing, 'other': not an address)."""
    if text is None:
        return None
    if "%" in text:  # a scope id: Python accepts it, inet_pton does not
        return "other"
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return "other"


def in_net(a: Addr | str, net: Net) -> bool:
    return not isinstance(a, str) and a.version == net.version and a in net


def expect(op: str, text: str | None, nets: list[Net]) -> bool:
    """libsinsp's result of ``<field> <op> <nets>`` on an address text (no ``not``)."""
    a = parse(text)
    if a is None:
        return False
    if op in ("=", "in"):
        return any(in_net(a, n) for n in nets)
    assert op == "!=" and len(nets) == 1
    return not in_net(a, nets[0])


# -- address texts ---------------------------------------------------------------------


def spellings(a: ipaddress.IPv6Address, rng: random.Random) -> list[str]:
    """Several texts inet_pton reads as ``a``: compressed, exploded, upper/mixed case,
    unpadded groups, another zero run compressed, a dotted IPv4 tail."""
    groups = [int(a) >> (16 * (7 - i)) & 0xFFFF for i in range(8)]
    plain = [f"{g:x}" for g in groups]
    out = [str(a), a.exploded, str(a).upper(), ":".join(plain),
           "".join(c.upper() if rng.random() < 0.5 else c for c in a.exploded)]
    zero_runs = [i for i in range(8) if groups[i] == 0]
    if zero_runs:  # '::' for one zero group, possibly not the longest run
        i = rng.choice(zero_runs)
        out.append(":".join(plain[:i]) + "::" + ":".join(plain[i + 1:]))
    tail = ipaddress.IPv4Address(int(a) & 0xFFFFFFFF)
    out.append(":".join(plain[:6]) + f":{tail}")
    head = str(ipaddress.IPv6Address(int(a) & ~0xFFFFFFFF))
    if head.endswith("::"):  # the zero run reaches the tail: '...::a.b.c.d'
        out.append(head + str(tail))
    return out


def near(net: ipaddress.IPv6Network, rng: random.Random) -> list[ipaddress.IPv6Address]:
    """Addresses at, inside and just outside the network's edges."""
    lo, hi = int(net.network_address), int(net.broadcast_address)
    vals = {lo, hi, rng.randint(lo, hi), lo - 1, hi + 1}
    flip = 1 << (128 - rng.randint(1, net.prefixlen))  # one network bit changed
    vals.add(lo ^ flip)
    return [ipaddress.IPv6Address(v) for v in sorted(vals) if 0 <= v < 1 << 128]


def random_net(prefix: int, rng: random.Random) -> ipaddress.IPv6Network:
    bits = rng.getrandbits(128)
    if rng.random() < 0.3:  # leading zero groups: '::' at the start of the texts
        bits >>= rng.randint(16, 100)
    return ipaddress.IPv6Network((bits, prefix), strict=False)


FIXED_TEXTS = [
    None, "::", "::1", "::0", "0::0", "::ffff:1.2.3.4", "::FFFF:10.0.0.1", "::1.2.3.4",
    "64:ff9b::8.8.8.8", "fe80::1", "FE80::ABCD:1", "fd00::1", "fc00::", "2001:db8::1",
    "1.2.3.4", "10.0.0.1", "0.0.0.0", "127.0.0.1", "255.255.255.255",
    # not addresses (inet_pton fails): never in a network
    "", "1::2::3", "12345::1", ":1::2", "1:2:3:4:5:6:7:8::", "1:2:3:4:5:6:7:8:9", "1:2:3",
    "::1.2.3.04", "::256.1.1.1", "1:2:3:4:5:6:7:1.2.3.4", "g::1", "fe80::1%eth0", "::1 ",
    "localhost",
]

WELL_KNOWN = [ipaddress.IPv6Network(n) for n in (
    "fc00::/7", "fe80::/10", "::ffff:0:0/96", "::1/128", "2001:db8::/32", "64:ff9b::/96",
    "::/8", "8000::/1", "::/1", "ff00::/8")]


def build_cases(seed: int = 20261123) -> tuple[list[Net], list[str | None]]:
    """Networks of every tested prefix length and the address texts around them."""
    rng = random.Random(seed)
    nets: list[Net] = list(WELL_KNOWN)
    nets += [random_net(p, rng) for p in PREFIXES for _ in range(2)]
    nets = list(dict.fromkeys(nets))
    texts: list[str | None] = list(FIXED_TEXTS)
    for net in nets:
        for a in near(net, rng):
            texts += rng.sample(spellings(a, rng), 4)
    return nets, list(dict.fromkeys(texts))


NETS, TEXTS = build_cases()


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    """A table ``events``: each row a text (or NULL) per address column, shuffled so the
    client/server/local/remote columns differ on a row."""
    rng = random.Random(7)
    cols = {"id": list(range(len(TEXTS)))}
    for i, c in enumerate(COLUMNS):
        texts = list(TEXTS)
        if i:
            rng.shuffle(texts)
        cols[c] = texts
    c = duckdb.connect()
    c.register("src", pa.table(cols))
    c.execute("CREATE TABLE events AS SELECT * FROM src")
    c.unregister("src")
    return c


def rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, str | None]]:
    names = ["id", *COLUMNS]
    got = con.execute(f"SELECT {', '.join(names)} FROM events ORDER BY id").fetchall()
    return [dict(zip(names, r, strict=True)) for r in got]


def check(con: duckdb.DuckDBPyConnection, *cases: tuple[str, list[bool]]) -> None:
    """Each ``(condition, expected per row)``: the conditions compiled by fcap and
    evaluated on every row (in id order), in one query."""
    sqls = ", ".join(compile_condition(cond) for cond, _ in cases)
    got = con.execute(f"SELECT {sqls} FROM events e ORDER BY e.id").fetchall()
    for k, (cond, want) in enumerate(cases):
        bad = [(r, w) for r, g, w in zip(rows(con), got, want, strict=True) if g[k] is not w]
        assert not bad, f"{cond}: {len(bad)} wrong rows, e.g. {bad[:3]}"


# -- tests -----------------------------------------------------------------------------


def test_cases_cover_what_they_claim() -> None:
    """The generated texts hit both sides of every network, in several spellings."""
    v6 = [t for t in TEXTS if isinstance(parse(t), ipaddress.IPv6Address)]
    assert len(v6) > 400
    assert any(t and t != t.lower() for t in v6) and any(t and "." in t for t in v6)
    for net in NETS:
        inside = sum(expect("=", t, [net]) for t in TEXTS)
        assert 0 < inside < len(TEXTS) - 10, net


@pytest.mark.parametrize("net", NETS, ids=str)
@pytest.mark.parametrize("field", sorted(FIELD_COLUMN))
def test_single_valued_field_against_ipaddress(con: duckdb.DuckDBPyConnection, field: str,
                                               net: Net) -> None:
    col = FIELD_COLUMN[field]
    texts = [r[col] for r in rows(con)]
    check(con,
          (f"{field} = {net}", [expect("=", t, [net]) for t in texts]),
          (f"{field} in ({net})", [expect("in", t, [net]) for t in texts]),
          (f"{field} != {net}", [expect("!=", t, [net]) for t in texts]),
          (f"not {field} = {net}", [not expect("=", t, [net]) for t in texts]),
          (f"not {field} != {net}", [not expect("!=", t, [net]) for t in texts]))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_lists_of_networks(con: duckdb.DuckDBPyConnection, prefix: int) -> None:
    """``in`` with several IPv6 networks (and IPv4 ones mixed in): any of them."""
    nets = [n for n in NETS if n.prefixlen == prefix] + [
        ipaddress.IPv6Network("fc00::/7"), ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("1.2.0.0/15")]
    items = ", ".join(map(str, nets))
    texts = [r["fd_sip"] for r in rows(con)]
    check(con,
          (f"fd.snet in ({items})", [expect("in", t, nets) for t in texts]),
          (f"not fd.snet in ({items})", [not expect("in", t, nets) for t in texts]),
          (f"fd.snet intersects ({items})", [expect("in", t, nets) for t in texts]))


@pytest.mark.parametrize("net", [n for n in NETS if n.prefixlen in (7, 64, 65, 128)], ids=str)
def test_fd_net_is_client_or_server(con: duckdb.DuckDBPyConnection, net: Net) -> None:
    """``fd.net``: true when the client or the server address is in the network."""
    pairs = [(r["fd_cip"], r["fd_sip"]) for r in rows(con)]
    want = [expect("=", c, [net]) or expect("=", s, [net]) for c, s in pairs]
    ten = [ipaddress.IPv4Network("10.0.0.0/8")]
    check(con,
          (f"fd.net = {net}", want),
          (f"fd.net in ({net}, 10.0.0.0/8)",
           [w or expect("in", c, ten) or expect("in", s, ten)
            for w, (c, s) in zip(want, pairs, strict=True)]),
          (f"not fd.net in ({net})", [not w for w in want]))


_ONE = duckdb.connect()


def one(cond: str, text: str | None) -> bool:
    """``cond`` on one event whose four address columns hold ``text``."""
    cols = ", ".join(f"CAST($1 AS VARCHAR) AS {c}" for c in COLUMNS)
    q = f"SELECT {compile_condition(cond)} FROM (SELECT {cols}) e"
    return bool(_ONE.execute(q, [text]).fetchone()[0])


@pytest.mark.parametrize(
    ("text", "net", "inside"),
    [("fd12:3456::1", "fc00::/7", True), ("FDFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
                                          "fc00::/7", True),
     ("fe00::1", "fc00::/7", False), ("fbff:ffff::", "fc00::/7", False),
     ("fe80::1", "fe80::/10", True), ("febf:ffff::1", "fe80::/10", True),
     ("fec0::1", "fe80::/10", False), ("::1", "::1/128", True), ("0:0::0:1", "::1/128", True),
     ("0000:0000:0000:0000:0000:0000:0000:0001", "::1/128", True), ("::2", "::1/128", False),
     ("::ffff:1.2.3.4", "::ffff:0:0/96", True), ("::ffff:1.2.3.4", "::ffff:102:300/120", True),
     ("::ffff:1.2.4.4", "::ffff:102:300/120", False), ("::1.2.3.4", "::ffff:0:0/96", False),
     ("2001:db8:ffff::", "2001:db8::/32", True), ("2001:db9::", "2001:db8::/32", False),
     ("2001:db8:0:1::", "2001:db8::/64", False), ("2001:db8::ffff:ffff:ffff:ffff",
                                                   "2001:db8::/64", True),
     ("2001:db8:0:0:8000::", "2001:db8::/65", False), ("2001:db8::7fff:0:0:1",
                                                       "2001:db8::/65", True),
     ("::", "::/8", True), ("::", "::1/128", False), ("ff02::1", "ff00::/8", True)],
)
def test_known_memberships(text: str, net: str, inside: bool) -> None:
    """Memberships worked out by hand (independent of the oracle above)."""
    assert one(f"fd.snet = {net}", text) is inside
    assert one(f"fd.snet != {net}", text) is not inside


@pytest.mark.parametrize("text", ["10.0.0.1", "0.0.0.0", "127.0.0.1"])
def test_ipv4_address_against_ipv6_network(text: str) -> None:
    """The other family: '=' and 'in' false, '!=' true (filter_compare.cpp PT_IPNET)."""
    for net in ("::/1", "::ffff:0:0/96", "::/96", "::ffff:a00:1/128"):
        assert not one(f"fd.snet = {net}", text)
        assert not one(f"fd.snet in ({net})", text)
        assert one(f"fd.snet != {net}", text)
        assert one(f"not fd.snet in ({net})", text)


@pytest.mark.parametrize("net", ["10.0.0.0/8", "1.2.0.0/16", "1.2.3.0/24", "1.2.3.4/32",
                                 "0.0.0.0/0", "172.16.0.0/12", "1.2.3.0/25"])
@pytest.mark.parametrize("text", ["::ffff:1.2.3.4", "::ffff:10.0.0.1", "2001:db8::1", "::"])
def test_ipv6_address_against_ipv4_network(net: str, text: str) -> None:
    """An IPv6 text (even an IPv4-mapped one, which libsinsp keeps as an IPv6 address
    unless both ends of the socket are mapped) is never in an IPv4 network."""
    assert not one(f"fd.snet = {net}", text)
    assert not one(f"fd.snet in ({net}, 5.5.5.5/32)", text)
    assert one(f"not fd.snet in ({net})", text)


@pytest.mark.parametrize("net", ["10.0.0.0/8", "1.2.0.0/16", "1.2.3.4/32"])
def test_ipv6_address_not_equal_to_ipv4_octet_network(net: str) -> None:
    assert one(f"fd.snet != {net}", "2001:db8::1")
    assert one(f"fd.snet != {net}", "::ffff:1.2.3.4")


@pytest.mark.parametrize("net", ["172.16.0.0/12", "1.2.3.0/25", "0.0.0.0/0"])
def test_ipv6_address_not_equal_to_ipv4_other_prefix(net: str) -> None:
    # the IPv4 test of a non-octet prefix is NULL for IPv6 text: '!=' must still be true
    assert one(f"fd.snet != {net}", "2001:db8::1")
    assert not one(f"fd.snet != {net}", None)


@pytest.mark.parametrize("net", ["fc00::/7", "2001:db8::/64", "::1/128"])
def test_missing_field(net: str) -> None:
    """A missing address: every check false, whatever the operator; 'not' makes it true."""
    assert not one(f"fd.snet = {net}", None)
    assert not one(f"fd.snet != {net}", None)
    assert not one(f"fd.snet in ({net}, 2001::/16)", None)
    assert one(f"not fd.snet in ({net}, 2001::/16)", None)
    assert one(f"not fd.snet != {net}", None)
    assert not one(f"fd.net = {net}", None)


def test_prefix_zero_is_rejected_like_falco() -> None:
    """libsinsp's ipv6net rejects a prefix length of 0 ('invalid v6 netmask')."""
    with pytest.raises(ConditionCompileError, match="invalid v6 netmask 0"):
        compile_condition("fd.snet in (fc00::/7, ::/0)")
    with pytest.raises(ConditionCompileError, match="invalid v6 netmask 0"):
        compile_condition("fd.snet != ::/0")


def test_one_expansion_per_column_for_a_list() -> None:
    """Several IPv6 networks in one list share the expansion of the address text;
    prefixes of at most 16 bits test the first group without it, /128 is an address test
    (canonical text first); IPv4 networks keep their cheap SQL (a prefix test, no regex)."""
    q = compile_condition("fd.snet in (2001:db8::/32, 2001:db9::/48, fd00::/17)")
    assert q.count("string_split") == 1 and q.count("regexp_full_match") == 1
    q = compile_condition("fd.snet in (fc00::/7, fe80::/10, ::1/128, 2001:db8::/32)")
    assert q.count("regexp_full_match") == 3  # first group, /128, the others
    assert q.count("e.fd_sip IN ('::1')") == 1
    q = compile_condition("fd.net in (fc00::/7, fe80::/10, 10.0.0.0/8)")
    assert q.count("regexp_full_match") == 2 and "string_split" not in q  # client and server
    q = compile_condition("fd.snet in (10.0.0.0/8, 192.168.0.0/16)")
    assert q == ("coalesce((starts_with(e.fd_sip, '10.') OR starts_with(e.fd_sip, '192.168.')),"
                 " false)")


SAMPLE_NETS = ["::/1", "::/8", "::/128", "::1/128", "fc00::/7", "8000::/1", "127.0.0.0/8"]


def test_capture_filter_and_rule(tmp_path: Path) -> None:
    """On a capture file with IPv6 sockets (:func:`fields_fixture.ipv6_server_world`; no
    bundled sample has an IPv6 address since sshd's listener on '::' is an IPv4 server
    socket, as in libsinsp's parse_bind_exit): ``Capture.filter`` and a rule's alerts
    agree with the oracle applied to the enriched address columns."""
    path = write_capture(ipv6_server_world(), tmp_path / "v6.parquet")
    cap = fcap.open(path)
    cap._ensure_events()
    events = cap.con.execute("SELECT evt_num, fd_cip, fd_sip, fd_lip, fd_rip FROM events "
                             "ORDER BY evt_num").fetchall()
    assert any(r[3] == "::1" for r in events)  # an IPv6 address
    total = 0
    for field, col in (("fd.lnet", 3), ("fd.snet", 2), ("fd.rnet", 4)):
        for net in SAMPLE_NETS:
            want = [r[0] for r in events if expect("=", r[col], [ipaddress.ip_network(net)])]
            got = cap.filter(f"{field} = {net}", columns=["evt.num"]).fetchall()
            assert [g[0] for g in got] == want, (field, net)
            total += len(want)
    assert total > 0


def test_capture_rule_alerts(tmp_path: Path) -> None:
    """A rule with IPv6 networks loads, compiles and alerts on a listening IPv6 server
    socket (bound to '::1': in ::/8, not in fc00::/7; the one bound to '::' is an IPv4
    server socket, 0.0.0.0)."""
    rules = tmp_path / "v6.yaml"
    rules.write_text(
        "- rule: v6 listen\n  desc: t\n  condition: evt.type = listen and fd.snet in "
        "(fc00::/7, ::/8)\n  output: v6 %fd.sip\n  priority: NOTICE\n"
        "- rule: v6 ula listen\n  desc: t\n  condition: evt.type = listen and fd.snet = "
        "fc00::/7\n  output: ula %fd.sip\n  priority: NOTICE\n")
    cap = fcap.open(write_capture(ipv6_server_world(), tmp_path / "v6.parquet"), rules=rules)
    alerts = cap.con.execute("SELECT rule, output FROM alerts").fetchall()
    assert [(rule, out.split()[:2]) for rule, out in alerts] == [("v6 listen", ["v6", "::1"])]


def _pair(cond: str, cip: str | None, sip: str | None) -> bool:
    """``cond`` on one event with client address ``cip`` and server address ``sip``."""
    q = (f"SELECT {compile_condition(cond)} FROM (SELECT CAST($1 AS VARCHAR) AS fd_cip, "
         "CAST($2 AS VARCHAR) AS fd_sip) e")
    return bool(_ONE.execute(q, [cip, sip]).fetchone()[0])


@pytest.mark.parametrize("net", ["127.0.0.0/8", "127.0.0.0/12", "::1/128", "fc00::/7"])
def test_net_not_equal_needs_both_ends_outside(net: str) -> None:
    """fd.net != N: libsinsp compare_net returns sip_cmp && dip_cmp for a connected socket
    (the stable rules' ``outbound`` macro: a connection to localhost is not outbound)."""
    inside = "127.0.0.1" if net.startswith("127") else ("::1" if net == "::1/128" else "fd00::1")
    outside = "10.0.0.5" if net.startswith("127") else "2001:db8::5"
    assert not _pair(f"fd.net != {net}", outside, inside)
    assert not _pair(f"fd.net != {net}", inside, outside)
    assert _pair(f"fd.net != {net}", outside, outside)
    assert _pair(f"fd.net = {net}", outside, inside)
    assert _pair(f"fd.net != {net}", None, outside)  # a listening socket: its one address
    assert not _pair(f"fd.net != {net}", None, None)


def test_port_not_equal_needs_both_ends_different() -> None:
    """fd.port != P: libsinsp compare_port (CO_NE) needs both ports to differ; the other
    operators take either."""
    def ports(cond: str, c: int | None, s: int | None) -> bool:
        q = (f"SELECT {compile_condition(cond)} FROM (SELECT CAST($1 AS INTEGER) AS fd_cport, "
             "CAST($2 AS INTEGER) AS fd_sport) e")
        return bool(_ONE.execute(q, [c, s]).fetchone()[0])

    assert not ports("fd.port != 22", 40000, 22)
    assert ports("fd.port != 22", 40000, 80)
    assert ports("fd.port = 22", 40000, 22)
    assert ports("fd.port > 1000", 40000, 22)
    assert ports("fd.port != 22", None, 80)
    assert not ports("fd.port != 22", None, None)
