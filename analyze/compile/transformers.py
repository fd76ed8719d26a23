"""Field transformers as DuckDB expressions (libs ``sinsp_filter_transformers/``).

``tolower``/``toupper``/``basename``/``b64`` take a string and give a string;
``len`` gives the byte length of a string or buffer, or the size of a list;
``concat(a, b, ...)`` and ``join(sep, (a, b, ...))`` build a string from
fields and literals. A transformed value is missing (the check is false) when
any field it uses is missing or, for ``b64``, when the input is not base64.

``getopt(args, optstring)`` (libs 0.25, ``sinsp_filtercheck_multivalue_transformer.cpp``)
parses a list of strings the way POSIX ``getopt(3)`` parses argv (short options
only): ``args`` is a list -- a parenthesised list of strings/fields, or a
libs list field -- and ``optstring`` one string (``"nt:"``: ``-n`` a flag,
``-t`` takes a value; a leading ``:`` and a second ``:`` are accepted and have
no effect). The walk stops at ``--``, at ``-`` and at the first argument not
starting with ``-``; long options (``--exec``) are skipped; ``-nt`` is a cluster
of options; a value is the rest of the token (``-tvalue``) or the next argument
(``-t value``). The result is a list: each option character, followed by its
value when it takes one, ``?`` for an unknown option and ``""`` for an option
whose value is missing; only ``in``, ``intersects`` and ``exists`` apply to it
(``in``: every element is in the set). ``getopt(...)[t]`` is the value of
option ``t`` instead (its last occurrence; the option character itself for a
flag, ``""`` when its value is missing), a string that is missing (the check
is false) when ``-t`` is absent. The walk is one ``list_reduce`` over the
arguments; it works on characters where libs works on bytes (the same for
ASCII options).
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
    if name == "getopt":  # pragma: no cover - the type pass calls apply_getopt
        raise V.ValueError_("transformer 'getopt' needs its arguments' structure")
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


# -- getopt -------------------------------------------------------------------------

#: an argument of getopt as the type pass resolved it: a field or transformer, a literal,
#: or a parenthesised list (a tuple of those)
GetoptArg = Operand | str | tuple[Operand | str, ...]

#: libs fields flagged EPF_IS_LIST (the only list-typed fields getopt's first argument takes)
LIBS_LIST_FIELDS = frozenset({"fd.types"})

_NUMERIC = (FieldType.INT, FieldType.UINT, FieldType.PORT)
_PAIR = "STRUCT(o VARCHAR, v VARCHAR, k INTEGER)"


class GetoptError(V.ValueError_):
    """A misuse of ``getopt`` (libs' message) with a hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


_USAGE = 'e.g. getopt(("-n", "-t", "value"), "nt:") intersects (t) or getopt(...)[t] = value'


def is_list_result(o: object) -> bool:
    """True for an operand that libs types as a list (``getopt(...)`` without ``[x]``):
    only ``in``/``intersects``/``exists`` apply to it and ``in`` means every element."""
    return isinstance(o, ast.Transform) and o.name.lower() == "getopt" and o.arg is None


def _list_item(a: Operand | str) -> str:
    if isinstance(a, str):
        return V.sql_str(a)
    if a.multi:
        raise GetoptError("getopt() list items must be single values in fcap",
                          "list the arguments one by one")
    if a.type in _STRINGISH:
        return a.sql
    if a.type in _NUMERIC:  # libs turns numeric list items into their decimal text
        return f"CAST({a.sql} AS VARCHAR)"
    raise GetoptError("getopt() arguments must be strings")


def _args_list(a: GetoptArg) -> tuple[str, str | None, tuple[str, ...]]:
    """SQL of getopt's first argument (a VARCHAR[]), the condition for it to be
    extractable (None: always) and the fields it uses."""
    if isinstance(a, tuple):
        items = [_list_item(x) for x in a]
        fields = _fields(list(a))
        sql = "[" + ", ".join(items) + "]::VARCHAR[]"
        # libs list_check: any item that cannot be extracted fails the whole list
        return sql, (f"list_count({sql}) = {len(items)}" if fields else None), fields
    if isinstance(a, Operand) and a.fields and a.fields[0] in LIBS_LIST_FIELDS:
        if a.type not in _STRINGISH:
            raise GetoptError("getopt() arguments must be strings")
        return a.sql, f"{a.sql} IS NOT NULL", a.fields
    hint = _USAGE
    if isinstance(a, Operand):
        what = f"'{a.fields[0]}'" if a.fields else "this value"
        hint = (f"{what} is one value in libs, not a list; list the arguments, "
                'e.g. getopt((proc.args[0], proc.args[1]), "nt:")')
    raise GetoptError("getopt() first argument must be a list", hint)


def _optstring(a: GetoptArg) -> Operand:
    if isinstance(a, tuple):
        raise GetoptError("getopt() second argument (optstring) must be a single value",
                          'write the optstring as one quoted string, e.g. "nt:"')
    if isinstance(a, str):
        return Operand(V.sql_str(a), FieldType.STRING)
    if a.multi:
        raise GetoptError("getopt() second argument (optstring) must be a single value")
    if a.type not in _STRINGISH:
        raise GetoptError("getopt() arguments must be strings")
    return a


def _getopt_pairs(args_sql: str, opts: str) -> str:
    """SQL of the parsed options: a list of (o, v, k) structs, k = 0 a flag, 1 an option
    with value v, 2 an option whose value is missing, 3 an unknown option character o.

    Per argument (vectorized): its class (0 an option cluster, 1 a long option, skipped,
    2 the end: ``--``, ``-``, ``""`` or a non-option), its characters after ``-``, the
    position k of the first one taking a value, the options before k, the option at k
    with the rest of the token as value, or pending (k is the last character: the value
    is the next argument). Then one ``list_reduce`` walks the arguments in order with a
    state (0 scanning, 1 a value pending for option p, 2 stopped); a sentinel argument
    (class 3) closes a pending option as missing.
    """
    valid = f"(c <> ':' AND contains({opts}, c))"
    takes = f"(c <> ':' AND contains({opts}, c || ':'))"
    stage1 = (f"list_transform({args_sql}, lambda x: {{'t': x, "
              f"'ch': string_split(substr(x, 2), '')}})")
    stage2 = (f"list_transform({stage1}, lambda a: {{'t': a.t, 'ch': a.ch, "
              f"'k': list_position(list_transform(a.ch, lambda c: {takes}), true)}})")
    cls = ("CASE WHEN b.t = '--' THEN 2 WHEN starts_with(b.t, '--') THEN 1 "
           "WHEN length(b.t) < 2 OR NOT starts_with(b.t, '-') THEN 2 ELSE 0 END")
    head = (f"list_transform(b.ch[1:coalesce(b.k - 1, len(b.ch))], lambda c: "
            f"{{'o': c, 'v': NULL::VARCHAR, 'k': CASE WHEN {valid} THEN 0 ELSE 3 END}})")
    tail = (f"CASE WHEN b.k < len(b.ch) THEN [{{'o': b.ch[b.k], 'v': substr(b.t, b.k + 2), "
            f"'k': 1}}] ELSE []::{_PAIR}[] END")
    stage3 = (f"list_transform({stage2}, lambda b: {{'t': b.t, 'cls': {cls}, "
              f"'pairs': list_concat({head}, {tail}), "
              f"'pend': CASE WHEN b.k = len(b.ch) THEN b.ch[b.k] END}})")
    end = f"{{'t': NULL::VARCHAR, 'cls': 3, 'pairs': []::{_PAIR}[], 'pend': NULL::VARCHAR}}"
    step = ("CASE WHEN s.st = 2 THEN s "
            "WHEN s.st = 1 THEN {'st': 0, 'p': NULL::VARCHAR, 'q': list_append(s.q, "
            "{'o': s.p, 'v': y.t, 'k': CASE WHEN y.cls = 3 THEN 2 ELSE 1 END})} "
            "WHEN y.cls >= 2 THEN {'st': 2, 'p': s.p, 'q': s.q} "
            "WHEN y.cls = 1 THEN s "
            "ELSE {'st': CASE WHEN y.pend IS NULL THEN 0 ELSE 1 END, 'p': y.pend, "
            "'q': list_concat(s.q, y.pairs)} END")
    init = f"{{'st': 0, 'p': NULL::VARCHAR, 'q': []::{_PAIR}[]}}"
    return f"list_reduce(list_append({stage3}, {end}), lambda s, y: {step}, {init}).q"


def apply_getopt(t: ast.Transform, args: list[GetoptArg]) -> Operand:
    """``getopt(args, optstring)`` and ``getopt(args, optstring)[x]`` as a typed operand.

    Checks follow libs' constructor and ``set_arg`` (same order, same messages).
    """
    if len(args) != 2:
        raise GetoptError("getopt() requires exactly 2 arguments: args list and optstring",
                          _USAGE)
    args_sql, guard, fields = _args_list(args[0])
    opts = _optstring(args[1])
    fields += opts.fields
    if t.arg is not None and len(t.arg.encode()) != 1:
        raise GetoptError("getopt() field argument must be a single option character",
                          "e.g. getopt(...)[t] = value")
    pairs = _getopt_pairs(args_sql, opts.sql)
    if t.arg is None:
        sql = ("flatten(list_transform(" + pairs + ", lambda q: CASE q.k WHEN 0 THEN [q.o] "
               "WHEN 1 THEN [q.o, q.v] WHEN 2 THEN [''] ELSE ['?'] END))")
        multi = True
    else:
        sel = V.sql_str(t.arg)
        sql = (f"list_transform(list_filter({pairs}, lambda q: q.o = {sel} AND q.k < 3)[-1:], "
               "lambda q: CASE q.k WHEN 0 THEN q.o WHEN 1 THEN q.v ELSE '' END)[1]")
        # exact shortcut: without the option character in any argument there is no match
        sql = f"(CASE WHEN contains(array_to_string({args_sql}, ' '), {sel}) THEN {sql} END)"
        multi = False
    # a missing list item or optstring fails the extraction (list_append would make a
    # NULL list a list again, so the guard is explicit)
    guards = [g for g in (guard, f"{opts.sql} IS NOT NULL" if opts.fields else None) if g]
    if guards:
        sql = f"(CASE WHEN {' AND '.join(guards)} THEN {sql} END)"
    exists = f"({sql} IS NOT NULL)" if multi else None
    return Operand(sql, FieldType.STRING, multi=multi, exists_sql=exists, fields=fields)
