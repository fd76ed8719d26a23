"""Literal values: conversion to a field's type and safe SQL quoting.

Every value written in a condition reaches SQL through :func:`sql_str` (a
standard SQL string literal with ``'`` doubled; DuckDB does not treat
backslashes specially in such literals) or as a Python ``int``/``float``
rendered by :func:`sql_num`. Nothing from a rule is ever spliced into SQL
unescaped.

Conversions follow libsinsp: integers are parsed like ``sinsp_numparser``
(``sscanf("%ld%c")``: optional blanks and sign, decimal digits only, nothing
after), booleans accept ``true``/``false``, addresses and networks are parsed
like ``sinsp_filter_value_parser::string_to_rawval`` for ``PT_IPADDR``/``PT_IPNET``
(the C library's ``inet_pton``, which libsinsp calls, through :func:`socket.inet_pton`).
"""

from __future__ import annotations

import ipaddress
import re
import socket

from fcap.analyze.fields.types import FieldType

_INT_RE = re.compile(r"\s*[+-]?[0-9]+")
_DOUBLE_RE = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

NUMERIC_TYPES = frozenset(
    {
        FieldType.INT,
        FieldType.UINT,
        FieldType.ABSTIME,
        FieldType.RELTIME,
        FieldType.PORT,
        FieldType.DOUBLE,
    }
)


class ValueError_(Exception):
    """A literal cannot be converted to the field's type (``hint``: how to fix it)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def sql_str(text: str) -> str:
    """``text`` as a SQL string literal (quotes doubled; NUL rejected)."""
    if "\x00" in text:
        raise ValueError_("a string value cannot contain a NUL character")
    return "'" + text.replace("'", "''") + "'"


def sql_num(value: int | float) -> str:
    """A number as SQL text (integers beyond int64 as HUGEINT-safe literals)."""
    if isinstance(value, bool):  # pragma: no cover - defensive
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def parse_int(text: str, *, unsigned: bool) -> int:
    """libsinsp's ``parsed64``/``parseu64``: decimal only; ``-`` wraps for unsigned."""
    if not _INT_RE.fullmatch(text):
        raise ValueError_(f"{text} is not a valid number")
    value = int(text.strip())
    if unsigned:
        if value < 0:  # sscanf("%lu") accepts '-N' and negates modulo 2**64
            value %= 1 << 64
        if value >= 1 << 64:
            raise ValueError_(f"{text} is not a valid number")
    elif not -(1 << 63) <= value < (1 << 63):
        raise ValueError_(f"{text} is not a valid number")
    return value


def parse_double(text: str) -> float:
    if not _DOUBLE_RE.fullmatch(text):
        raise ValueError_(f"{text} is not a valid number")
    return float(text)


def parse_bool(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError_(f"{text} is not a valid boolean (true or false)")


#: C ``isspace`` in the "C" locale (``sscanf`` skips these before a number)
_C_SPACE = " \t\n\v\f\r"
_U32_RE = re.compile(f"[{re.escape(_C_SPACE)}]*([+-]?)([0-9]+)")
_ULONG = 1 << 64


def parse_prefix_len(mask: str) -> int:
    """libsinsp ``sinsp_numparser::parseu8``: ``sscanf(mask, "%u%c")`` must convert
    exactly one number (blanks before it, a sign, decimal digits, nothing after),
    then the ``uint32_t`` result is cast to ``uint8_t``. ``strtoul`` clamps an
    overflow to ``ULONG_MAX`` and negates ``-N`` modulo 2**64, so ``/256`` is 0
    and ``/-224`` is 32, as in Falco."""
    m = _U32_RE.fullmatch(mask)
    if m is None:
        raise ValueError_(f"{mask} is not a valid number",
                          hint="the prefix length is a decimal number after the '/', "
                               "e.g. 10.0.0.0/8 or fc00::/7")
    value = int(m.group(2))
    value = _ULONG - 1 if value >= _ULONG else (-value % _ULONG if m.group(1) == "-" else value)
    return value % 256  # (uint8_t)(uint32_t)


def _inet_pton(family: socket.AddressFamily, text: str) -> bytes | None:
    """The C library's ``inet_pton`` (what libsinsp calls), None when it rejects ``text``."""
    try:
        return socket.inet_pton(family, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None


def _no_nul(text: str) -> None:
    """libsinsp ``string_to_rawval``: no value may hold a NUL byte."""
    if "\x00" in text:
        raise ValueError_("filter error: filter value cannot contain a NUL byte (\\x00)")


def _mapped_hint(text: str, what: str) -> str | None:
    """A hint for an IPv6 spelling with a dotted IPv4 tail (Falco reads any value holding
    a '.' as IPv4): the IPv4 form of an IPv4-mapped address (fcap records those as IPv4)
    and the hex spelling libsinsp accepts. None when ``text`` is no such spelling."""
    addr, slash, prefix = text.partition("/")
    raw = _inet_pton(socket.AF_INET6, addr) if ":" in addr else None
    if raw is None:
        return None
    a6 = ipaddress.IPv6Address(raw)
    hexed = f"{a6}{slash}{prefix}"
    v4 = ""
    if a6.ipv4_mapped is not None:
        try:
            n = parse_prefix_len(prefix) if slash else 128
        except ValueError_:
            n = -1
        if n >= 96:
            v4 = f"{a6.ipv4_mapped}/{n - 96}" if slash else str(a6.ipv4_mapped)
    first = f"write {v4} (fcap records an IPv4-mapped address as IPv4) or " if v4 else "write "
    return (f"Falco reads a value holding a '.' as an IPv4 {what}: {first}the hex "
            f"spelling {hexed}")


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A ``PT_IPADDR`` value (``fd.ip``, ``fd.sip``...) as libsinsp's
    ``sinsp_filter_value_parser::string_to_rawval`` (value_parser.cpp): a value holding
    a ``.`` is an IPv4 address, anything else IPv6, each read by ``inet_pton``
    (IPv4: four decimal numbers 0-255, no leading zero, no blank; IPv6: no scope id,
    no dotted tail since it holds a ``.``)."""
    _no_nul(text)
    if "." in text:
        raw = _inet_pton(socket.AF_INET, text)
        if raw is None:
            raise ValueError_(
                f"{text} is not a valid IP address (unrecognized IPv4 address)",
                hint=_mapped_hint(text, "address") or (
                    "an IPv4 address is four decimal numbers 0-255 joined by '.', without "
                    "leading zeros, blanks or a /prefix (use fd.net, fd.snet... for networks)"))
        return ipaddress.IPv4Address(raw)
    raw = _inet_pton(socket.AF_INET6, text)
    if raw is None:
        raise ValueError_(
            f"{text} is not a valid IP address (unrecognized IPv6 address)",
            hint="an IPv6 address as inet_pton reads it (e.g. 2001:db8::1), without a scope "
                 "id (%eth0), blanks or a /prefix (use fd.net, fd.snet... for networks)")
    return ipaddress.IPv6Address(raw)


def parse_net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A ``PT_IPNET`` value (``fd.net``, ``fd.snet``...) as libsinsp's
    ``string_to_rawval`` (value_parser.cpp, ``PT_IPV4NET``) and ``ipv6net::ipv6net``
    (tuples.cpp): a value holding a ``.`` is an IPv4 network, anything else IPv6; the
    ``/`` is required; the address (before the first ``/``) is read by ``inet_pton``,
    the prefix length (up to a newline, ``getline``) by :func:`parse_prefix_len`;
    IPv4 takes 0-32, IPv6 1-128. Host bits are allowed (both sides are masked)."""
    _no_nul(text)
    v4 = "." in text
    if "/" not in text:
        if v4:
            raise ValueError_(f"unrecognized IP network {text}",
                              hint=f"a network needs its prefix length: {text}/32 "
                                   "for this one address (or compare fd.ip, fd.sip...)")
        raise ValueError_(f"invalid v6 netmask: {text}",
                          hint=f"a network needs its prefix length: {text}/128 "
                               "for this one address (or compare fd.ip, fd.sip...)")
    addr, _, rest = text.partition("/")
    mask = rest.split("\n", 1)[0]
    if v4:
        raw = _inet_pton(socket.AF_INET, addr)
        if raw is None:
            raise ValueError_(
                f"unrecognized IP address {text}",
                hint=_mapped_hint(text, "network") or (
                    "an IPv4 network is four decimal numbers 0-255 joined by '.' (no leading "
                    "zeros), '/' and the prefix length, e.g. 10.0.0.0/8"))
        prefix = parse_prefix_len(mask)
        if prefix > 32:
            raise ValueError_(f"invalid netmask {mask}",
                              hint="the prefix length of an IPv4 network is 0-32")
        return ipaddress.IPv4Network((raw, prefix), strict=False)
    raw = _inet_pton(socket.AF_INET6, addr)
    if raw is None:
        raise ValueError_(f"unrecognized IPv6 address {text}",
                          hint="an IPv6 network is an address as inet_pton reads it, '/' and "
                               "the prefix length, e.g. fc00::/7")
    prefix = parse_prefix_len(mask)
    if prefix == 0 or prefix > 128:
        raise ValueError_(
            f"invalid v6 netmask {mask}",
            hint="the prefix length of an IPv6 network is 1-128 (Falco rejects 0: "
                 "'::/1' and '8000::/1' together cover every IPv6 address)")
    return ipaddress.IPv6Network((raw, prefix), strict=False)


def convert(text: str, ftype: FieldType) -> object:
    """Convert a literal for a comparison with a field of type ``ftype``."""
    if ftype in (FieldType.INT,):
        return parse_int(text, unsigned=False)
    if ftype in (FieldType.UINT, FieldType.PORT, FieldType.ABSTIME, FieldType.RELTIME):
        return parse_int(text, unsigned=True)
    if ftype is FieldType.DOUBLE:
        return parse_double(text)
    if ftype is FieldType.BOOL:
        return parse_bool(text)
    if ftype is FieldType.IPADDR:
        return parse_ip(text)
    if ftype is FieldType.IPNET:
        return parse_net(text)
    if ftype is FieldType.BYTES:
        return text.encode("utf-8", "surrogateescape")
    return text
