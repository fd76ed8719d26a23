"""Literal values: conversion to a field's type and safe SQL quoting.

Every value written in a condition reaches SQL through :func:`sql_str` (a
standard SQL string literal with ``'`` doubled; DuckDB does not treat
backslashes specially in such literals) or as a Python ``int``/``float``
rendered by :func:`sql_num`. Nothing from a rule is ever spliced into SQL
unescaped.

Conversions follow libsinsp: integers are parsed like ``sinsp_numparser``
(``sscanf("%ld%c")``: optional blanks and sign, decimal digits only, nothing
after), booleans accept ``true``/``false``, addresses and networks are parsed
like ``sinsp_filter_check::parse_filter_value`` for ``PT_IPADDR``/``PT_IPNET``.
"""

from __future__ import annotations

import ipaddress
import re

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
    """A literal cannot be converted to the field's type."""


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


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError_(f"{text} is not a valid IP address") from None


def parse_net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network ``a.b.c.d/n`` (host bits allowed, as in libs) or a single address."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError_(f"{text} is not a valid IP network") from None


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
