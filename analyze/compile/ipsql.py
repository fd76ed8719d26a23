"""SQL for IP address and network checks (``ipaddr`` and ``ipnet`` fields).

libsinsp parses the values (:mod:`.values`) and compares binary addresses
(filter_compare.cpp ``flt_compare`` for ``PT_IPADDR``/``PT_IPNET``); fcap's address
columns hold text, so the SQL here reads the text as the address it spells: IPv4 as
dotted decimal, IPv6 through :mod:`.ipv6`. An address of the other family is unequal
and never in a network; a missing one fails every check (``!=`` included).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from fcap.analyze.fields.types import FieldType

from . import values as V
from .ipv6 import ipv6_eq_sql, ipv6_nets_sql

if TYPE_CHECKING:
    from .typecheck import Operand


def net_sql(x: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network, negate: bool) -> str:
    """``x`` in (``negate``: not in) the network, libsinsp ``flt_compare_ipv4net`` /
    ``ipv6net::in_cidr``."""
    if isinstance(net, ipaddress.IPv6Network):
        sql = ipv6_nets_sql(x, [net])  # see .ipv6 (libsinsp ipv6net::in_cidr)
        # '!=': true for an address outside the network or of the other family
        # (filter_compare.cpp), false only for a missing one
        return f"({x} IS NOT NULL AND NOT coalesce({sql}, false))" if negate else sql
    else:
        lo, hi = int(net.network_address), int(net.broadcast_address)
        octets = str(net.network_address).split(".")
        if net.prefixlen == 32:
            sql = f"({x} = {V.sql_str(str(net.network_address))})"
        elif net.prefixlen in (8, 16, 24):  # a dotted prefix: no conversion to an integer
            prefix = ".".join(octets[: net.prefixlen // 8]) + "."
            sql = f"starts_with({x}, {V.sql_str(prefix)})"
        else:
            # the whole octets as a dotted prefix, then the one partial octet as a number
            # (one split_part instead of four): 172.16.0.0/12 is '172.' and 16-31; NULL
            # outside the prefix like the integer test (IPv6 text never starts so)
            k = net.prefixlen // 8
            part = f"TRY_CAST(split_part({x}, '.', {k + 1}) AS INTEGER)"
            test = f"{part} BETWEEN {(lo >> (24 - 8 * k)) & 255} AND {(hi >> (24 - 8 * k)) & 255}"
            if k:
                prefix = V.sql_str(".".join(octets[:k]) + ".")
                sql = f"(CASE WHEN starts_with({x}, {prefix}) THEN {test} END)"
            else:
                sql = f"({test})"
    # '!=': true for an address outside the network or of the other family (the tests are
    # false or NULL for IPv6 text), false only for a missing one (filter_compare.cpp)
    return f"(NOT coalesce({sql}, {x} IS NULL))" if negate else sql


def nets_sql(x: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """``x in (nets)``: any network; the IPv6 ones share one expansion of ``x``
    (:func:`.ipv6.ipv6_nets_sql`)."""
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    terms = [net_sql(x, n, False) for n in nets if not isinstance(n, ipaddress.IPv6Network)]
    if v6:
        terms.append(ipv6_nets_sql(x, v6))
    return "(" + " OR ".join(terms) + ")"


def ips_sql(x: str, addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
             negate: bool = False) -> str:
    """``x = a`` / ``x in (addrs)`` (``negate``: ``!=``) for an ``ipaddr`` field, as
    libsinsp compares the binary addresses (filter_compare.cpp ``PT_IPADDR``): an
    address of the other family is unequal, IPv6 text in any spelling is its 16 bytes
    (:func:`.ipv6.ipv6_eq_sql`); IPv4 text is compared as written (the recorder and
    the snapshot write dotted decimal without leading zeros, the one text of an IPv4
    address). ``!=`` is false for a missing address, like every check."""
    v4 = list(dict.fromkeys(V.sql_str(str(a)) for a in addrs
                            if isinstance(a, ipaddress.IPv4Address)))
    v6 = list(dict.fromkeys(a for a in addrs if isinstance(a, ipaddress.IPv6Address)))
    if not v6:  # IPv4 only: the text test (NULL for a missing address)
        if len(v4) == 1:
            return f"({x} {'<>' if negate else '='} {v4[0]})"
        return f"({'NOT ' if negate else ''}{x} IN ({', '.join(v4)}))"
    eq = ipv6_eq_sql(x, v6)  # false, not NULL, for a missing address
    if v4:
        eq = f"({x} IN ({', '.join(v4)}) OR {eq})"
    return f"({x} IS NOT NULL AND NOT {eq})" if negate else eq


#: IP fields libsinsp flags EPF_NO_RHS (sinsp_filtercheck_fd.cpp): no val() on either side
IP_NO_RHS = frozenset({"fd.ip", "fd.net", "fd.cnet", "fd.snet", "fd.lnet", "fd.rnet"})


def check_ip_rhs_field(lhs: Operand, rhs: Operand) -> None:
    """libsinsp ``sinsp_filter_check::add_filter_value`` for a right-hand side field
    (``val(...)``) where an IP field takes part, in libs' order and words: an ``ipnet``
    field takes none; ``fd.ip``, ``fd.net`` and the ``*net`` fields are EPF_NO_RHS on
    either side; the two types must be equal (``check_rhs_field_type_consistency``)."""
    ip = (FieldType.IPADDR, FieldType.IPNET)
    if lhs.type not in ip and rhs.type not in ip:
        return
    lname = lhs.fields[0] if lhs.fields else "the field"
    rname = rhs.fields[0] if rhs.fields else "the field"
    hint = "compare an IP field with literal addresses or networks"
    if lhs.type is FieldType.IPNET:
        raise V.ValueError_("field type 'IPNET' doesn't support right-hand side fields",
                            hint=hint)
    if lname in IP_NO_RHS:
        raise V.ValueError_(f"field '{lname}' doesn't support right-hand side fields",
                            hint=hint)
    if rname in IP_NO_RHS:
        raise V.ValueError_(f"field '{rname}' can't be used as a right-hand side field",
                            hint="compare with fd.cip, fd.sip, fd.lip or fd.rip")
    if lhs.type is not rhs.type:
        raise V.ValueError_(
            f"field '{lname}' has type '{lhs.type.value}' while the right-hand side field "
            f"'{rname}' has incompatible type '{rhs.type.value}'",
            hint="an IP address field compares only with another IP address field")
