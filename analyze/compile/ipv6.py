"""IPv6 address text compared as addresses, as DuckDB SQL (``ipnet`` checks, and
``ipaddr`` checks with IPv6 values).

libsinsp (tuples.cpp ``ipv6net::in_cidr``) compares the first prefix-length bits of the
16 address bytes; an address of the other family never matches (filter_compare.cpp
``PT_IPNET``: ``=``/``in`` false, ``!=`` true). The address columns hold text, so the
SQL expands an IPv6 text to its 32 hex digits (lower case) and compares their first
prefix-length bits with the network's; IPv4 (dotted) or other text expands to NULL.

The expansion is a pure expression over the column (a regular expression checks the
text, lambdas bind the groups once); values come from :mod:`ipaddress` objects, so the
SQL holds only hex digits besides the column.
"""

from __future__ import annotations

import ipaddress

from . import values as V

_H16 = "[0-9a-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4TAIL = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"


def _ipv6_text() -> str:
    """An RE2 pattern for exactly the lower-cased texts ``inet_pton(AF_INET6)`` reads:
    8 groups, or ``::`` for at least one zero group with at most 7 groups around it; a
    dotted IPv4 tail counts as two groups."""
    alts = [rf"(?:{_H16}:){{7}}{_H16}", rf"(?:{_H16}:){{6}}{_V4TAIL}"]
    for a in range(8):  # a groups before '::'
        left = rf"(?:{_H16}:){{{a - 1}}}{_H16}" if a else ""
        if a < 7:
            alts.append(rf"{left}::(?:{_H16}(?::{_H16}){{0,{6 - a}}})?")
        else:
            alts.append(f"{left}::")
        if a <= 5:
            alts.append(rf"{left}::(?:{_H16}:){{0,{5 - a}}}{_V4TAIL}")
    return "|".join(alts)


_IPV6_TEXT = _ipv6_text()


def ipv6_hex_sql(x: str, body: str | None = None) -> str:
    """SQL for the 32 lower-case hex digits of the IPv6 address text ``x`` (NULL when
    ``x`` is NULL, IPv4 or not an address).

    With ``body`` (an SQL boolean over ``__h``, the hex digits), the result is that
    test instead, the expansion computed once. ``::`` may stand anywhere for one or
    more zero groups, groups have 1-4 digits in either case, and a dotted IPv4 tail
    (``::ffff:1.2.3.4``) is the last 32 bits, as ``inet_pton`` reads them.
    """
    y = f"lower({x})"
    tail = f"regexp_extract({y}, '[0-9.]+$')"
    o = [f"TRY_CAST(split_part({tail}, '.', {k}) AS INTEGER)" for k in (1, 2, 3, 4)]
    # a dotted tail -> two hex groups; '::' -> a 'g' group; groups -> list
    groups = (f"string_split(trim(replace(CASE WHEN contains({y}, '.') THEN "
              f"regexp_replace({y}, '[0-9.]+$', '') || printf('%x:%x', {o[0]} * 256 + {o[1]}, "
              f"{o[2]} * 256 + {o[3]}) ELSE {y} END, '::', ':g:'), ':'), ':')")
    # each group padded to 4 digits, 'g' to the missing zero groups (at least one)
    hex_ = (f"list_transform([{groups}], lambda __l: CASE WHEN len(__l) <= 8 THEN "
            "array_to_string(list_transform(__l, lambda __g: CASE WHEN __g = 'g' THEN "
            "repeat('0', 36 - 4 * len(__l)) ELSE lpad(__g, 4, '0') END), '') END)[1]")
    if body is not None:
        hex_ = f"list_transform([{hex_}], lambda __h: {body})[1]"
    return f"CASE WHEN regexp_full_match({y}, {V.sql_str(_IPV6_TEXT)}) THEN {hex_} END"


def ipv6_range(net: ipaddress.IPv6Network) -> tuple[str, str]:
    """The network's first and last address as 32 hex digits."""
    if net.prefixlen == 0:  # libsinsp ipv6net::init; values.parse_net rejects it first
        raise V.ValueError_("invalid v6 netmask 0",
                            hint="'::/1' and '8000::/1' together cover every IPv6 address")
    return (f"{int(net.network_address):032x}", f"{int(net.broadcast_address):032x}")


def ipv6_test(h: str, net: ipaddress.IPv6Network) -> str:
    """``h`` (32 hex digits) in ``net``: its first prefix/4 digits, and the top bits of
    the next one. ``h`` appears once (DuckDB would expand it twice for a BETWEEN)."""
    lo, hi = ipv6_range(net)
    whole, bits = divmod(net.prefixlen, 4)
    if whole == 32:
        return f"({h} = {V.sql_str(lo)})"
    if bits == 0:
        return f"starts_with({h}, {V.sql_str(lo[:whole])})"
    nibbles = ", ".join(V.sql_str(f"{lo[:whole]}{d:x}")
                        for d in range(int(lo[whole], 16), int(hi[whole], 16) + 1))
    return f"(left({h}, {whole + 1}) IN ({nibbles}))"


def ipv6_hex(addr: ipaddress.IPv6Address) -> str:
    """The address as 32 lower-case hex digits (what :func:`ipv6_hex_sql` gives)."""
    return f"{int(addr):032x}"


def ipv6_eq_sql(x: str, addrs: list[ipaddress.IPv6Address]) -> str:
    """``x`` holds one of the IPv6 ``addrs``, compared as 16 bytes like libsinsp
    (filter_compare.cpp ``flt_compare_ipv6addr``, ``ipv6addr::operator==``; ``in``
    lists by ``memcmp`` of the parsed values): any spelling of the address matches.

    The canonical spelling (what the recorder writes) is tested first. Other text is
    expanded only when it can be a spelling of an address: a dotted tail, or its hex
    digits other than ``0`` (lower case, ``:`` dropped) those of the address -- a
    spelling only pads groups with zeros or leaves zero groups out, so this is
    necessary. False (not NULL) for NULL or IPv4 text.
    """
    canon = ", ".join(V.sql_str(str(a)) for a in addrs)
    hexes = ", ".join(V.sql_str(ipv6_hex(a)) for a in addrs)
    digits = ", ".join(dict.fromkeys(V.sql_str(ipv6_hex(a).replace("0", "")) for a in addrs))
    gate = (f"contains({x}, ':') AND (contains({x}, '.') OR "
            f"replace(replace(lower({x}), ':', ''), '0', '') IN ({digits}))")
    return (f"(CASE WHEN {x} IN ({canon}) THEN true WHEN {gate} THEN "
            f"coalesce({ipv6_hex_sql(x, f'__h IN ({hexes})')}, false) ELSE false END)")


def _first_group_sql(x: str) -> str:
    """The first 16-bit group of IPv6 text ``x`` known to be valid (``::`` first: 0)."""
    return (f"CASE WHEN starts_with({x}, '::') THEN 0 "
            f"ELSE TRY_CAST('0x' || split_part({x}, ':', 1) AS INTEGER) END")


def ipv6_nets_sql(x: str, nets: list[ipaddress.IPv6Network]) -> str:
    """``x`` (address text) in any of the IPv6 ``nets`` (libsinsp ``ipv6net::in_cidr``):
    true or false for IPv6 text, NULL for NULL or other text.

    Three shapes, cheapest first: a ``/128`` network is its address
    (:func:`ipv6_eq_sql`); a prefix of at most 16 bits tests the first group only
    (the text before the first ``:``, 0 when it starts with ``::``); the others share
    one expansion to 32 hex digits (:func:`ipv6_test`).
    """
    for n in nets:
        ipv6_range(n)  # rejects ::/0
    hosts = [n.network_address for n in nets if n.prefixlen == 128]
    short = [n for n in nets if n.prefixlen <= 16]
    other = [n for n in nets if 16 < n.prefixlen < 128]
    gate = f"regexp_full_match(lower({x}), {V.sql_str(_IPV6_TEXT)})"
    terms = []
    if hosts:  # false for other text: NULL keeps the '!=' of the other family true
        terms.append(f"CASE WHEN contains({x}, ':') THEN {ipv6_eq_sql(x, hosts)} END")
    if short:
        g = _first_group_sql(x)
        tests = " OR ".join(
            f"(({g}) BETWEEN {int(n.network_address) >> 112} AND "
            f"{int(n.broadcast_address) >> 112})" for n in short)
        terms.append(f"CASE WHEN {gate} THEN {tests} END")
    if len(other) == 1:
        terms.append(ipv6_test(ipv6_hex_sql(x), other[0]))
    elif other:
        terms.append(ipv6_hex_sql(x, " OR ".join(ipv6_test("__h", n) for n in other)))
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"
