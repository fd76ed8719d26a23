"""IP address and network values as libsinsp parses and compares them.

Parsing follows ``sinsp_filter_value_parser::string_to_rawval`` (libs
userspace/libsinsp/value_parser.cpp) and ``ipv6net::ipv6net``/``init`` (tuples.cpp):

* ``PT_IPADDR`` (``fd.ip``, ``fd.cip``, ``fd.sip``, ``fd.lip``, ``fd.rip``): a value holding
  a ``.`` is an IPv4 address, anything else IPv6, each read by ``inet_pton``
  ("unrecognized IPv4/IPv6 address");
* ``PT_IPNET`` (``fd.net``, ``fd.cnet``...): a ``.`` means IPv4; a ``/`` is required
  ("unrecognized IP network" / "invalid v6 netmask: "); the address before the first ``/``
  by ``inet_pton``, the prefix length by ``sinsp_numparser::parseu8`` (``sscanf("%u%c")``,
  cast to ``uint8_t``), IPv4 0-32 ("invalid netmask"), IPv6 1-128 ("invalid v6 netmask").

Comparison follows ``flt_compare`` (filter_compare.cpp): ``PT_IPADDR`` compares the
binary addresses, an address of the other family is unequal; ``sinsp_filter_check_fd::
compare_ip`` takes either end for ``=`` and every end for ``!=``.

Oracles: Python's :mod:`ipaddress` (an implementation independent of the C library's
``inet_pton`` that fcap calls) with libsinsp's dispatch rules written out below, and
the C library's own ``sscanf`` (through ctypes) for the prefix length.
"""

from __future__ import annotations

import ctypes
import ipaddress
import random
from pathlib import Path

import duckdb
import pytest
from fcap.analyze.compile import ConditionCompileError
from fcap.analyze.compile import values as V
from fcap.analyze.compile.ipv6 import _IPV6_TEXT
from fcap.analyze.compile.ruleset import compile_condition, compile_ruleset
from fcap.analyze.rules import load_rules
from fields_fixture import ipv6_server_world, write_capture

import fcap

Addr = ipaddress.IPv4Address | ipaddress.IPv6Address

# -- oracles ---------------------------------------------------------------------------


def oracle_ip(text: str) -> Addr | None:
    """libsinsp's PT_IPADDR value parse (value_parser.cpp): '.' -> IPv4, else IPv6;
    None when it throws. ipaddress accepts scope ids (inet_pton does not)."""
    try:
        if "." in text:
            return ipaddress.IPv4Address(text)
        if "%" in text:
            return None
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


_LIBC = ctypes.CDLL(None)


def c_parseu8(mask: str) -> int | None:
    """libsinsp ``sinsp_numparser::parseu8`` run on the C library's ``sscanf``."""
    value, extra = ctypes.c_uint32(), ctypes.c_char()
    n = _LIBC.sscanf(mask.encode(), b"%u%c", ctypes.byref(value), ctypes.byref(extra))
    return value.value & 0xFF if n == 1 else None


def oracle_net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """libsinsp's PT_IPNET value parse (PT_IPV4NET in value_parser.cpp, ipv6net in
    tuples.cpp); None when it throws."""
    if "/" not in text:
        return None
    addr, _, rest = text.partition("/")
    prefix = c_parseu8(rest.split("\n")[0])
    if "." in text:
        a = oracle_ip(addr) if "." in addr else None
        if a is None or prefix is None or prefix > 32:
            return None
        return ipaddress.IPv4Network((int(a), prefix), strict=False)
    a = oracle_ip(addr)
    if a is None or prefix is None or not 1 <= prefix <= 128:
        return None
    return ipaddress.IPv6Network((int(a), prefix), strict=False)


def column_addr(text: str | None) -> Addr | str | None:
    """The address an address column's text holds (None: missing; 'other': no address)
    -- any spelling inet_pton reads, a dotted IPv4 tail included."""
    if text is None:
        return None
    if "%" in text:
        return "other"
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return "other"


def same(a: Addr | str | None, v: Addr) -> bool:
    """flt_compare PT_IPADDR: equal only within one family, as bytes."""
    return not isinstance(a, str | type(None)) and a.version == v.version and int(a) == int(v)


# -- value texts -----------------------------------------------------------------------


def v6_spellings(a: ipaddress.IPv6Address, rng: random.Random) -> list[str]:
    """Texts inet_pton reads as ``a``: compressed, exploded, case, unpadded, another '::',
    and a dotted IPv4 tail (a value libsinsp reads as IPv4, so rejects)."""
    groups = [int(a) >> (16 * (7 - i)) & 0xFFFF for i in range(8)]
    plain = [f"{g:x}" for g in groups]
    out = [str(a), a.exploded, str(a).upper(), ":".join(plain)]
    zeros = [i for i in range(8) if groups[i] == 0]
    if zeros:
        i = rng.choice(zeros)
        out.append(":".join(plain[:i]) + "::" + ":".join(plain[i + 1:]))
    out.append(":".join(plain[:6]) + f":{ipaddress.IPv4Address(int(a) & 0xFFFFFFFF)}")
    return out


def address_texts(seed: int = 1123) -> list[str]:
    rng = random.Random(seed)
    v6 = [ipaddress.IPv6Address(x) for x in
          ("::", "::1", "::2", "fe80::1", "2001:db8::1", "2001:db8:0:0:1::1", "::ffff:1.2.3.4",
           "::1.2.3.4", "1:0:0:2:0:0:0:3")]
    v6 += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(6)]
    texts = [t for a in v6 for t in v6_spellings(a, rng)]
    v4 = ["1.2.3.4", "127.0.0.1", "0.0.0.0", "255.255.255.255", "10.0.0.1"]
    bad = ["01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/32",
           "0x1.2.3.4", "1.2.3.04", "::1%lo", "fe80::1%1", "1::2::3", ":1::", "12345::",
           "1:2:3:4:5:6:7:8::", "1:2:3:4:5:6:7:8:9", "::g", "", "::1/128", " ::1", "::1 ",
           "١.٢.٣.٤", "localhost"]
    return texts + v4 + bad


# -- parsing ---------------------------------------------------------------------------


def test_oracle_and_libc_agree_on_the_texts() -> None:
    """The oracle (ipaddress + libsinsp's dispatch) and the C library's inet_pton, which
    fcap calls like libsinsp, accept the same texts: the oracle tests something."""
    import socket

    for text in address_texts():
        fam = socket.AF_INET if "." in text else socket.AF_INET6
        try:
            socket.inet_pton(fam, text)
            libc = True
        except OSError:
            libc = False
        assert libc == (oracle_ip(text) is not None), text


@pytest.mark.parametrize("text", address_texts())
def test_address_values_against_oracle(text: str) -> None:
    want = oracle_ip(text)
    if want is None:
        with pytest.raises(V.ValueError_, match="is not a valid IP address"):
            V.parse_ip(text)
        with pytest.raises(ConditionCompileError):
            compile_condition(f"fd.sip = '{text}'")
    else:
        got = V.parse_ip(text)
        assert (got.version, int(got)) == (want.version, int(want))


@pytest.mark.parametrize(
    ("text", "accepted", "message"),
    # value_parser.cpp string_to_rawval, PT_IPADDR -> PT_IPV4ADDR / PT_IPV6ADDR
    [("1.2.3.4", True, None), ("0:0::1", True, None), ("::FFFF:102:304", True, None),
     ("1.2.3", False, "unrecognized IPv4 address"),
     ("01.2.3.4", False, "unrecognized IPv4 address"),  # inet_pton: no leading zero
     ("1.2.3.4 ", False, "unrecognized IPv4 address"),  # no blank
     ("::ffff:1.2.3.4", False, "unrecognized IPv4 address"),  # '.' -> IPv4
     ("::1.2.3.4", False, "unrecognized IPv4 address"),
     ("10.0.0.0/8", False, "unrecognized IPv4 address"),  # no network for an address
     ("::1/128", False, "unrecognized IPv6 address"),
     ("fe80::1%eth0", False, "unrecognized IPv6 address"),
     ("1::2::3", False, "unrecognized IPv6 address")],
)
def test_address_value_table(text: str, accepted: bool, message: str | None) -> None:
    if accepted:
        V.parse_ip(text)
        return
    with pytest.raises(V.ValueError_) as info:
        V.parse_ip(text)
    assert f"{text} is not a valid IP address ({message})" == str(info.value)
    assert info.value.hint


def test_mapped_spelling_hint_gives_both_spellings() -> None:
    with pytest.raises(V.ValueError_) as info:
        V.parse_ip("::ffff:1.2.3.4")
    assert "1.2.3.4" in info.value.hint and "::ffff:102:304" in info.value.hint
    with pytest.raises(V.ValueError_) as info:
        V.parse_net("::ffff:10.0.0.0/104")
    assert "10.0.0.0/8" in info.value.hint and "::ffff:a00:0/104" in info.value.hint


PREFIXES = ["8", "0", "32", "33", "128", "129", "256", "288", "384", "-1", "-224", "+24",
            " 24", "\t24", "024", "24 ", "", " ", "0x18", "1_6", "2.4", "24/8", "٣",
            "4294967296", "4294967320", "99999999999999999999999", "-99999999999999999999"]


@pytest.mark.parametrize("mask", PREFIXES)
def test_prefix_length_like_libc_sscanf(mask: str) -> None:
    want = c_parseu8(mask)
    if want is None:
        with pytest.raises(V.ValueError_, match="is not a valid number"):
            V.parse_prefix_len(mask)
    else:
        assert V.parse_prefix_len(mask) == want


def network_texts() -> list[str]:
    addrs = ["10.1.2.3", "0.0.0.0", "1.2.3", "01.2.3.4", "fc00::", "::1", "2001:db8::",
             "::ffff:1.2.3.0", "fe80::1%1", "1::2::3"]
    out = [f"{a}/{m}" for a in addrs for m in PREFIXES]
    return out + addrs + ["/8", "10.0.0.0/24\n5", "fc00::/7\nx", "10.0.0.0//8"]


@pytest.mark.parametrize("text", network_texts())
def test_network_values_against_oracle(text: str) -> None:
    want = oracle_net(text)
    if want is None:
        with pytest.raises(V.ValueError_):
            V.parse_net(text)
    else:
        assert V.parse_net(text) == want


@pytest.mark.parametrize(
    ("text", "result", "message"),
    # value_parser.cpp PT_IPV4NET, tuples.cpp ipv6net::ipv6net / ipv6net::init
    [("10.0.0.0/8", "10.0.0.0/8", None), ("10.1.2.3/8", "10.0.0.0/8", None),
     ("0.0.0.0/0", "0.0.0.0/0", None), ("1.2.3.4/256", "0.0.0.0/0", None),
     ("1.2.3.4/-224", "1.2.3.4/32", None), ("fc00::/7", "fc00::/7", None),
     ("::1/384", "::1/128", None),
     ("1.2.3.4", None, "unrecognized IP network 1.2.3.4"),
     ("::1", None, "invalid v6 netmask: ::1"),
     ("::ffff:1.2.3.0/120", None, "unrecognized IP address ::ffff:1.2.3.0/120"),
     ("fc00::/7.5", None, "unrecognized IP address fc00::/7.5"),
     ("1.2.3/24", None, "unrecognized IP address 1.2.3/24"),
     ("1.2.3.0/33", None, "invalid netmask 33"),
     ("1.2.3.0/24 ", None, "24  is not a valid number"),
     ("1.2.3.0/", None, " is not a valid number"),
     ("fc00::x/7", None, "unrecognized IPv6 address fc00::x/7"),
     ("::/0", None, "invalid v6 netmask 0"), ("::/129", None, "invalid v6 netmask 129"),
     ("::/256", None, "invalid v6 netmask 256")],
)
def test_network_value_table(text: str, result: str | None, message: str | None) -> None:
    if result is not None:
        assert V.parse_net(text) == ipaddress.ip_network(result)
        return
    with pytest.raises(V.ValueError_) as info:
        V.parse_net(text)
    assert str(info.value) == message
    assert info.value.hint


def test_nul_byte_is_rejected() -> None:
    for parse in (V.parse_ip, V.parse_net):
        with pytest.raises(V.ValueError_, match="NUL byte"):
            parse("1.2.3.4\x00")


# -- diagnostics -----------------------------------------------------------------------

RULES = """\
- rule: bad address
  desc: d
  condition: evt.type = connect and fd.sip in (10.0.0.1, "::ffff:1.2.3.4")
  output: o
  priority: INFO
- rule: bad network
  desc: d
  condition: evt.type = connect and not fd.snet in (10.0.0.0/8, 192.168.0.1)
  output: o
  priority: INFO
- rule: good
  desc: d
  condition: evt.type = connect and fd.net = 0.0.0.0/0 and fd.sip != "0:0::1"
  output: o
  priority: INFO
"""


def test_bad_values_are_compile_errors_at_their_position() -> None:
    rs = load_rules(["ip.yaml"], texts={"ip.yaml": RULES})
    assert not rs.errors
    compiled = compile_ruleset(rs)
    errors = [d for d in compiled.diagnostics if d.severity == "error"]
    got = [(d.rule, d.location.line, d.location.col, d.location.length, d.message)
           for d in errors]
    line3, line8 = RULES.splitlines()[2], RULES.splitlines()[7]
    assert got == [
        ("bad address", 3, line3.index('"::ffff') + 1, len('"::ffff:1.2.3.4"'),
         "::ffff:1.2.3.4 is not a valid IP address (unrecognized IPv4 address)"),
        ("bad network", 8, line8.index("192.168.0.1") + 1, len("192.168.0.1"),
         "unrecognized IP network 192.168.0.1"),
    ]
    assert all(d.code == "LOAD_ERR_COMPILE_CONDITION" for d in errors)
    text = str(errors[1])
    assert text.startswith("ip.yaml:8:")
    assert "^" * len("192.168.0.1") in text


# -- comparison ------------------------------------------------------------------------

FIELDS = {"fd.cip": "fd_cip", "fd.sip": "fd_sip", "fd.lip": "fd_lip", "fd.rip": "fd_rip"}


@pytest.fixture(scope="module")
def table() -> tuple[duckdb.DuckDBPyConnection, list[str | None]]:
    """One row per column text: every address column holds it."""
    texts: list[str | None] = [*address_texts(), None]
    con = duckdb.connect()
    con.execute("CREATE TABLE e (i INTEGER, t VARCHAR)")
    con.executemany("INSERT INTO e VALUES (?, ?)", list(enumerate(texts)))
    cols = ", ".join(f"t AS {c}" for c in FIELDS.values())
    con.execute(f"CREATE VIEW ev AS SELECT i, {cols} FROM e")
    return con, texts


def run(con: duckdb.DuckDBPyConnection, cond: str) -> list[bool]:
    return [bool(r[0]) for r in con.execute(
        f"SELECT {compile_condition(cond)} FROM ev e ORDER BY i").fetchall()]


VALUES = ["::1", "0:0::1", "0000:0000:0000:0000:0000:0000:0000:0001", "::", "0::0",
          "FE80::1", "fe80:0::1", "2001:DB8::1", "::ffff:102:304", "::102:304", "1:0:0:2::3",
          "1.2.3.4", "127.0.0.1", "0.0.0.0"]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", ["fd.sip", "fd.cip"])
def test_address_equality_is_binary(table, field: str, value: str) -> None:
    """``=``/``!=``/``in``: any spelling of the column's IPv6 address equals any spelling
    of the value; the other family is unequal; a missing address fails every check."""
    con, texts = table
    v = V.parse_ip(value)
    addrs = [column_addr(t) for t in texts]
    eq = [same(a, v) for a in addrs]
    present = [a is not None for a in addrs]
    assert run(con, f"{field} = '{value}'") == eq
    assert run(con, f"{field} != '{value}'") == [p and not x for p, x in zip(present, eq, strict=True)]
    assert run(con, f"{field} in ('{value}', 5.6.7.8)") == eq
    assert run(con, f"not {field} in ('{value}')") == [not x for x in eq]
    assert run(con, f"{field} = anyof ('{value}', 5.6.7.8)") == eq
    assert run(con, f"{field} != allof ('{value}', 5.6.7.8)") == \
        [p and not x for p, x in zip(present, eq, strict=True)]
    assert any(eq)  # the texts hold the value's address


def test_lists_mixing_families(table) -> None:
    con, texts = table
    vals = ["::1", "1.2.3.4", "fe80::1", "10.0.0.1", "2001:db8::1"]
    parsed = [V.parse_ip(v) for v in vals]
    want = [any(same(column_addr(t), v) for v in parsed) for t in texts]
    assert run(con, f"fd.lip in ({', '.join(vals)})") == want
    assert run(con, f"fd.rip intersects ({', '.join(vals)})") == want
    one = [sum(same(column_addr(t), v) for v in parsed) == 1 for t in texts]
    assert run(con, f"fd.rip = oneof ({', '.join(vals)}, '0:0::1')") == \
        [sum(same(column_addr(t), v) for v in [*parsed, V.parse_ip("::1")]) == 1
         for t in texts]
    assert sum(want) > 5 and one == want


def _pair(cond: str, cip: str | None, sip: str | None, lip: str | None = None,
          rip: str | None = None) -> bool:
    q = (f"SELECT {compile_condition(cond)} FROM (SELECT CAST($1 AS VARCHAR) AS fd_cip, "
         "CAST($2 AS VARCHAR) AS fd_sip, CAST($3 AS VARCHAR) AS fd_lip, "
         "CAST($4 AS VARCHAR) AS fd_rip) e")
    return bool(duckdb.execute(q, [cip, sip, lip, rip]).fetchone()[0])


@pytest.mark.parametrize(
    ("cip", "sip"),
    [("::1", "2001:db8::5"), ("0:0::1", "2001:0DB8::5"), ("10.0.0.1", "::1"),
     (None, "0000::1"), ("::1", None), (None, None), ("2001:db8::5", "10.0.0.1")],
)
@pytest.mark.parametrize("value", ["::1", "0:0:0:0:0:0:0:1", "2001:db8::5", "10.0.0.1"])
def test_fd_ip_either_end_every_end(cip: str | None, sip: str | None, value: str) -> None:
    """fd.ip (sinsp_filter_check_fd::compare_ip): '=' either end, '!=' every end present."""
    v = V.parse_ip(value)
    ends = [column_addr(x) for x in (cip, sip) if x is not None]
    assert _pair(f"fd.ip = '{value}'", cip, sip) is any(same(a, v) for a in ends)
    assert _pair(f"fd.ip != '{value}'", cip, sip) is (
        bool(ends) and all(not same(a, v) for a in ends))
    assert _pair(f"fd.ip in ('{value}', 5.5.5.5)", cip, sip) is any(same(a, v) for a in ends)


# -- libs' unit tests (test/filter_op_net_compare.ut.cpp), on fcap's columns ------------


@pytest.mark.parametrize(
    ("cond", "want"),
    [("fd.ip == 142.251.111.147", True), ("fd.sip == 142.251.111.147", True),
     ("fd.lip == 142.251.111.147", True), ("fd.rip == 172.40.111.222", True),
     ("fd.cip == 172.40.111.222", True), ("fd.ip != 142.251.111.147", False),
     ("fd.sip != 0:0:0:0:0:0:0:1", True), ("fd.sip == '0:0:0:0:0:0:0:1'", False),
     ("fd.net == 142.0.0.0/4", True), ("fd.net == 142.251.0.0/8", True),
     ("fd.net == 142.251.111.0/16", True), ("fd.net != 10.0.0.0/8", True),
     ("fd.net != 2001:db8:abcd:0012::0/64", True), ("fd.net == 10.0.0.0/8", False),
     ("fd.net == 2001:db8:abcd:0012::0/64", False),
     # net_modifier_ip_compare
     ("fd.sip == anyof (142.251.111.147)", True),
     ("fd.sip == anyof (10.0.0.1, 142.251.111.147)", True),
     ("fd.sip == anyof (10.0.0.1, 192.168.0.1)", False),
     ("fd.sip == allof (142.251.111.147)", True),
     ("fd.sip == allof (142.251.111.147, 10.0.0.1)", False),
     ("fd.sip == oneof (142.251.111.147)", True),
     ("fd.sip == oneof (10.0.0.1, 142.251.111.147)", True),
     ("fd.sip == oneof (10.0.0.1, 192.168.0.1)", False),
     ("fd.sip != anyof (10.0.0.1)", True), ("fd.sip != anyof (142.251.111.147)", False),
     ("fd.sip != allof (10.0.0.1, 192.168.0.1)", True)],
)
def test_libs_net_ipv4_compare(cond: str, want: bool) -> None:
    # client 172.40.111.222:54321 -> server 142.251.111.147:443 (fd.lip is the server there)
    assert _pair(cond, "172.40.111.222", "142.251.111.147", "142.251.111.147",
                 "172.40.111.222") is want


@pytest.mark.parametrize(
    ("cond", "want"),
    [("fd.ip == 2001:4860:4860::8888", True), ("fd.sip == 2001:4860:4860::8888", True),
     ("fd.lip == 2001:4860:4860::8888", True), ("fd.rip == ::1", True),
     ("fd.cip == ::1", True), ("fd.ip != 2001:4860:4860::8888", False),
     ("fd.sip != 127.0.0.1", True), ("fd.sip == '127.0.0.1'", False),
     ("fd.net == 2001::0/16", True), ("fd.net == 2001:4860::0/32", True),
     ("fd.net == 2001:4860:4860::8888/48", True), ("fd.net != 10::0/16", True),
     ("fd.net != 10.0.0.0/8", True), ("fd.net == 10.0.0.0/8", False),
     ("fd.net == 2001:db8:abcd:0012::0/64", False),
     # the same checks with other spellings of the addresses (binary comparison)
     ("fd.sip == 2001:4860:4860:0:0:0:0:8888", True), ("fd.cip == 0::0:1", True),
     ("fd.ip != 2001:4860:4860:0::8888", False)],
)
def test_libs_net_ipv6_compare(cond: str, want: bool) -> None:
    assert _pair(cond, "::1", "2001:4860:4860::8888", "2001:4860:4860::8888", "::1") is want


def test_ipv4_zero_prefix_network() -> None:
    """IPv4 /0 is accepted (value_parser.cpp: cidrlen 0 is in range): every IPv4 address
    is in it, no IPv6 one ('!=' true for IPv6, filter_compare.cpp PT_IPNET)."""
    assert _pair("fd.snet = 0.0.0.0/0", None, "203.0.113.9")
    assert not _pair("fd.snet = 0.0.0.0/0", None, "2001:db8::1")
    assert _pair("fd.snet != 0.0.0.0/0", None, "2001:db8::1")
    assert not _pair("fd.snet != 1.2.3.4/256", None, "8.8.8.8")  # /256 is /0


def test_ipv4_sql_unchanged() -> None:
    """IPv4 values keep the plain text test (the stable rules' SQL, no expansion)."""
    assert compile_condition('fd.sip = "169.254.169.254"') == \
        "coalesce((e.fd_sip = '169.254.169.254'), false)"
    assert compile_condition("fd.sip in (1.2.3.4, 5.6.7.8)") == \
        "coalesce((e.fd_sip IN ('1.2.3.4', '5.6.7.8')), false)"
    assert "regexp" not in compile_condition('fd.ip != "0.0.0.0"')


# -- a real capture --------------------------------------------------------------------


def test_capture_ipv6_spellings(tmp_path: Path) -> None:
    """On a capture file with an IPv6 server on '::1' (:func:`fields_fixture.ipv6_server_world`;
    no bundled sample has an IPv6 address since sshd's listener on '::' is an IPv4 server
    socket, as in libsinsp's parse_bind_exit), other spellings of '::1' select the same
    events as the recorded text, and a rule alerts on them."""
    path = write_capture(ipv6_server_world(), tmp_path / "v6.parquet")
    cap = fcap.open(path)
    base = [r[0] for r in cap.filter("fd.lip = '::1'", columns=["evt.num"]).fetchall()]
    assert base
    for spelling in ("0::1", "0:0:0:0:0:0:0:1", "0000::0001"):
        got = cap.filter(f"fd.lip = '{spelling}'", columns=["evt.num"]).fetchall()
        assert [r[0] for r in got] == base
    ne = [r[0] for r in cap.filter("fd.lip != '0::1'", columns=["evt.num"]).fetchall()]
    assert not set(ne) & set(base)
    rules = tmp_path / "r.yaml"
    rules.write_text("- rule: any v6 server\n  desc: t\n  condition: evt.type = listen and "
                     "fd.sip = '0:0::1'\n  output: l %fd.sip\n  priority: NOTICE\n")
    alerts = fcap.open(path, rules=rules).con.execute("SELECT rule FROM alerts").fetchall()
    assert alerts and {a[0] for a in alerts} == {"any v6 server"}


def test_ipv6_text_pattern_is_exactly_inet_pton() -> None:
    """The SQL's gate for IPv6 text (:data:`_IPV6_TEXT`, on lower-cased text) accepts what
    the C library's inet_pton reads and nothing else (group counts included: 'a::' with
    8 groups around it is not an address)."""
    import socket

    rng = random.Random(7)
    pieces = ["", "0", "1", "ffff", "ABCD", "00000", "1.2.3.4", "256.1.1.1", "01.2.3.4", "g"]
    texts = {":".join(rng.choice(pieces) for _ in range(rng.randint(1, 10)))
             for _ in range(20000)}
    texts |= {"fdff:ffff:ffff:ffff:ffff:ffff::255.255.255.255", "1:2:3:4:5:6::1.2.3.4",
              "1:2:3:4:5::1.2.3.4", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8::",
              "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "::", "::1.2.3.4"}
    con = duckdb.connect()
    con.execute("CREATE TABLE t (s VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[t] for t in texts])
    got = dict(con.execute("SELECT s, regexp_full_match(lower(s), ?) FROM t",
                           [_IPV6_TEXT]).fetchall())

    def libc(t: str) -> bool:
        try:
            socket.inet_pton(socket.AF_INET6, t)
        except OSError:
            return False
        return True

    wrong = [t for t in texts if got[t] != libc(t)]
    assert not wrong, wrong[:5]
    assert 100 < sum(got.values()) < len(texts) - 100


def test_ipv4_networks_every_prefix_against_ipaddress() -> None:
    """IPv4 networks of every prefix length 0-32 (octet prefixes, a partial octet, the
    integer test for /0) on IPv4 text near the network's edges, IPv6 text and NULL:
    flt_compare_ipv4net masks both sides; the other family is '!=' (filter_compare.cpp)."""
    rng = random.Random(32)
    nets = [ipaddress.IPv4Network((rng.getrandbits(32), p), strict=False) for p in range(33)]
    nets += [ipaddress.ip_network(n) for n in ("172.16.0.0/12", "10.0.0.0/8", "0.0.0.0/0")]
    texts: list[str | None] = [None, "::1", "::ffff:172.16.0.1", "2001:db8::1"]
    for n in nets:
        lo, hi = int(n.network_address), int(n.broadcast_address)
        for v in (lo, hi, lo - 1, hi + 1, rng.randint(lo, hi), rng.getrandbits(32)):
            texts.append(str(ipaddress.IPv4Address(v % (1 << 32))))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, fd_sip VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    addrs = [column_addr(t) for t in texts]
    inside = {str(n): [isinstance(a, ipaddress.IPv4Address) and a in n for a in addrs]
              for n in nets}
    for n in nets:
        want = inside[str(n)]
        for cond, exp in ((f"fd.snet = {n}", want),
                          (f"fd.snet != {n}", [a is not None and not w
                                               for a, w in zip(addrs, want, strict=True)]),
                          (f"fd.snet in ({n}, 192.0.2.0/24)",
                           [w or (isinstance(a, ipaddress.IPv4Address)
                                  and a in ipaddress.ip_network("192.0.2.0/24"))
                            for a, w in zip(addrs, want, strict=True)])):
            got = [bool(r[0]) for r in con.execute(
                f"SELECT {compile_condition(cond)} FROM t e ORDER BY i").fetchall()]
            assert got == exp, cond


@pytest.mark.parametrize(
    ("cond", "message"),
    # sinsp_filter_check::add_filter_value(rhs_chk) and check_rhs_field_type_consistency;
    # EPF_NO_RHS on fd.ip, fd.net and the *net fields (sinsp_filtercheck_fd.cpp)
    [("fd.snet = val(fd.cip)", "field type 'IPNET' doesn't support right-hand side fields"),
     ("fd.net != val(fd.sip)", "field type 'IPNET' doesn't support right-hand side fields"),
     ("fd.ip = val(fd.cip)", "field 'fd.ip' doesn't support right-hand side fields"),
     ("fd.sip = val(fd.ip)", "field 'fd.ip' can't be used as a right-hand side field"),
     ("fd.sip = val(fd.snet)", "field 'fd.snet' can't be used as a right-hand side field"),
     ("fd.sip = val(proc.name)", "field 'fd.sip' has type 'ipaddr' while the right-hand "
                                 "side field 'proc.name' has incompatible type 'string'"),
     ("proc.name = val(fd.rip)", "field 'proc.name' has type 'string' while the right-hand "
                                 "side field 'fd.rip' has incompatible type 'ipaddr'")],
)
def test_ip_right_hand_side_fields_like_libsinsp(cond: str, message: str) -> None:
    with pytest.raises(ConditionCompileError) as info:
        compile_condition(f"evt.type = connect and {cond}")
    assert info.value.message == message
    assert info.value.hint
    assert info.value.location.col == len("evt.type = connect and ") + 1


def test_ip_right_hand_side_field_allowed() -> None:
    """Two address fields (PT_IPADDR both): allowed, compared as the recorded texts."""
    assert _pair("fd.sip = val(fd.lip)", None, "10.0.0.1", "10.0.0.1", None)
    assert not _pair("fd.sip = val(fd.lip)", None, "10.0.0.1", "10.0.0.2", None)
    assert _pair("fd.cip != val(fd.sip)", "::1", "10.0.0.1")
    assert not _pair("fd.cip != val(fd.sip)", None, "10.0.0.1")  # a missing side: false


def test_value_errors_carry_their_hint() -> None:
    """The type pass passes libsinsp-style value errors on with their hint."""
    from fcap.analyze.compile import ConditionCompileError, compile_condition

    with pytest.raises(ConditionCompileError) as info:
        compile_condition("fd.snet = 10.0.0.1")
    assert info.value.message == "unrecognized IP network 10.0.0.1"
    assert info.value.hint is not None and "10.0.0.1/32" in info.value.hint
