"""Field transformers as DuckDB expressions (libs ``sinsp_filter_transformers/``).

``tolower``/``toupper``/``basename``/``b64`` take a string and give a string;
``len`` gives the byte length of a string or buffer, or the size of a list;
``concat(a, b, ...)`` and ``join(sep, (a, b, ...))`` build a string from
fields and literals. A transformed value is missing (the check is false) when
any field it uses is missing or, for ``b64``, when the input is not base64.
``getopt`` is not supported yet (a compile error naming it).
"""

from __future__ import annotations

from fcap.analyze.condition import ast
from fcap.analyze.fields.types import FieldType

from . import values as V
from .typecheck import Operand

_STRINGISH = (FieldType.STRING,)


def _string_arg(name: str, a: Operand | str) -> Operand:
    if isinstance(a, str):
        return Operand(V.sql_str(a), FieldType.STRING)
    if a.multi:
        raise V.ValueError_(f"transformer '{name}' does not support list fields")
    if a.type not in _STRINGISH:
        raise V.ValueError_(f"transformer '{name}' is not supported on type {a.type.value}")
    return a


def _fields(args: list[Operand | str]) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    for a in args:
        if isinstance(a, Operand):
            out += a.fields
    return out


def apply_transformer(t: ast.Transform, args: list[Operand | str]) -> Operand:
    """The typed operand for transformer ``t`` applied to resolved ``args``."""
    name = t.name.lower()
    if t.arg is not None:
        raise V.ValueError_(f"transformer '{name}' does not take an [argument]")
    if name in ("tolower", "toupper", "basename", "b64"):
        if len(args) != 1:
            raise V.ValueError_(f"transformer '{name}' takes exactly one argument")
        a = _string_arg(name, args[0])
        sql = {
            "tolower": f"lower({a.sql})",
            "toupper": f"upper({a.sql})",
            "basename": f"parse_filename({a.sql}, false, 'forward_slash')",
            "b64": f"try(decode(from_base64({a.sql})))",
        }[name]
        return Operand(sql, FieldType.STRING, fields=a.fields)
    if name == "len":
        if len(args) != 1 or isinstance(args[0], str):
            raise V.ValueError_("transformer 'len' takes exactly one field")
        a = args[0]
        if a.multi:
            sql = f"CAST(len({a.sql}) AS UBIGINT)"
        elif a.type is FieldType.BYTES:
            sql = f"CAST(octet_length({a.sql}) AS UBIGINT)"
        elif a.type in _STRINGISH:
            sql = f"CAST(strlen({a.sql}) AS UBIGINT)"
        else:
            raise V.ValueError_(f"transformer 'len' is not supported on type {a.type.value}")
        return Operand(sql, FieldType.UINT, fields=a.fields)
    if name == "concat":
        if len(args) < 2:
            raise V.ValueError_("transformer 'concat' takes at least two arguments")
        parts = [_string_arg(name, a).sql for a in args]
        return Operand("(" + " || ".join(parts) + ")", FieldType.STRING, fields=_fields(args))
    if name == "join":
        if len(args) < 2 or not isinstance(args[0], str):
            raise V.ValueError_("transformer 'join' takes a separator and a list")
        sep = V.sql_str(args[0])
        rest = args[1:]
        if len(rest) == 1 and isinstance(rest[0], Operand) and rest[0].multi:
            sql = f"array_to_string({rest[0].sql}, {sep})"
        else:
            parts = [_string_arg(name, a).sql for a in rest]
            sql = "(" + f" || {sep} || ".join(parts) + ")"
        return Operand(sql, FieldType.STRING, fields=_fields(rest))
    raise V.ValueError_(f"transformer '{name}' is not supported by fcap yet")
