"""SQL generation: a type-checked condition AST -> a DuckDB boolean expression.

Semantics follow libsinsp (``filter_compare.cpp``, ``sinsp_filtercheck.cpp``):

* a check whose field cannot be extracted is false, whatever the operator
  (``proc.name != x`` is false when ``proc.name`` is missing), so every check is
  wrapped in ``coalesce(..., false)`` and ``not`` then negates a two-valued
  result exactly as libs does;
* strings compare byte-wise (``strcmp``); ``contains``/``startswith``/``endswith``
  are substring tests, ``icontains`` is ``strcasestr`` (ASCII case folding);
* ``glob``/``iglob`` are ``fnmatch(3)`` without flags (``*`` also matches
  ``/``), translated to ``LIKE`` or an anchored regular expression;
* ``regex`` is an RE2 match anchored at both ends (``regexp_full_match``);
* ``pmatch`` matches a path equal to or below a listed directory, list items
  may hold glob wildcards per path component (``prefix_search.h``);
* ``in``/``intersects`` are set membership; on multi-valued fields (``FieldRef.multi``)
  a check is true when any element satisfies it;
* ``oneof``/``anyof``/``allof`` combine the per-item checks (exactly one / at
  least one / all);
* IP addresses compare as addresses, ``ipnet`` fields with CIDR networks.

Values are quoted with :func:`fcap.analyze.compile.values.sql_str` and never
spliced raw.
"""

from __future__ import annotations

import ipaddress
import re

from fcap.analyze.condition import ast
from fcap.analyze.fields.types import FieldType

from . import regex
from . import values as V
from .diagnostics import LOAD_ERR_COMPILE_CONDITION, CompileIssue
from .ipsql import check_ip_rhs_field, ips_sql, net_sql, nets_sql
from .typecheck import Operand, Typed

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
IN_MAP_THRESHOLD = 8  # string IN lists longer than this compile to a MAP lookup
_CMP = {"=": "=", "==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def fnmatch_to_regex(pattern: str, *, component: bool = False) -> str:
    """An RE2 pattern equivalent to ``fnmatch(pattern, s, 0)`` (anchoring left to the caller).

    With ``component`` True, ``*``/``?``/brackets never match ``/`` (used for
    pmatch path components, which cannot contain one anyway).
    """
    any_char = "[^/]" if component else "(?s:.)"
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(any_char + "*")
        elif c == "?":
            out.append(any_char)
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                neg = body[:1] in ("!", "^")
                if neg:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                out.append("[" + ("^" if neg else "") + body + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_sql(x: str, pattern: str, *, casefold: bool) -> str:
    """``fnmatch`` of ``x`` against a literal pattern."""
    if not any(ch in pattern for ch in "?[\\"):
        like = "%".join(_like_escape(p) for p in pattern.split("*"))
        return f"({x} {'ILIKE' if casefold else 'LIKE'} {V.sql_str(like)} ESCAPE '\\')"
    rx = ("(?i)" if casefold else "") + fnmatch_to_regex(pattern)
    return f"regexp_full_match({x}, {V.sql_str(rx)})"


def pmatch_sql(x: str, items: list[str]) -> str:
    """libs ``path_prefix_search``: ``x`` equals or lies below one of ``items``."""
    plain: list[str] = []
    regexes: list[str] = []
    for item in items:
        comps = [c for c in item.split("/") if c]
        if not comps:
            return "true"  # '/' matches every path
        has_glob = any(ch in item for ch in "*?[")
        if not has_glob and item == "/" + "/".join(comps):
            plain.append(item)
        else:
            parts = [fnmatch_to_regex(c, component=True) if has_glob else re.escape(c)
                     for c in comps]
            regexes.append("/*" + "/+".join(parts) + "(?:/.*)?")
    terms: list[str] = []
    if plain:
        terms.append(f"{x} IN ({', '.join(V.sql_str(p) for p in plain)})")
        terms += [f"starts_with({x}, {V.sql_str(p + '/')})" for p in plain]
    if regexes:
        terms.append(f"regexp_full_match({x}, {V.sql_str('|'.join(regexes))})")
    return "(" + " OR ".join(terms) + ")" if terms else "false"


_COSTLY = (("lambda", 4000), ("regexp", 1500), ("split_part", 300), ("list_", 300),
           ("map_contains", 200), ("like", 100), ("lower(", 100))


def sql_cost(sql: str) -> int:
    """A rough evaluation cost of a predicate's SQL, to order AND operands."""
    return len(sql) + sum(sql.count(k) * w for k, w in _COSTLY)


#: operators whose check is usually false on a random event (a value or pattern test)
_SELECTIVE_OPS = frozenset({"=", "==", "in", "intersects", "pmatch", "contains", "icontains",
                            "bcontains", "startswith", "bstartswith", "endswith", "glob",
                            "iglob", "regex"})


#: fields with few distinct values, most events sharing one (a file, tcp, success): a value
#: test on them rules out few events
_FEW_VALUES = frozenset({"fd.typechar", "fd.type", "fd.l4proto", "fd.sockfamily", "evt.dir",
                         "evt.res", "evt.failed", "proc.tty", "user.uid", "user.name",
                         "container.id", "proc.is_exe_upper_layer", "proc.is_exe_from_memfd"})


def selectivity(e: ast.Expr) -> float:
    """A rough share of events for which ``e`` is true (no statistics: operator shapes).

    Value tests (``=``, ``in``, ``startswith``...) are taken as selective (0.05),
    ``!=`` and ``exists`` as true on most events, order comparisons, tests of a
    boolean field and of fields with few common values (``fd.typechar``) as half;
    ``not`` complements, ``and`` takes its most selective operand (the checks of a
    macro are correlated), ``or`` adds. ``evt.type`` tests count as half: the dispatch on the event type has
    already applied them when a rule's checks run.
    """
    if isinstance(e, ast.And):  # checks of one macro are correlated: the most selective
        return min(selectivity(c) for c in e.children)
    if isinstance(e, ast.Or):
        return min(1.0, sum(selectivity(c) for c in e.children))
    if isinstance(e, ast.Not):
        return 1.0 - selectivity(e.child)
    if isinstance(e, ast.Exists):
        return 0.9
    if isinstance(e, ast.Compare):
        name = getattr(e.lhs, "name", "")
        if name == "evt.type" or name in _FEW_VALUES:
            return 0.5
        values = e.rhs.items if isinstance(e.rhs, ast.ListLiteral) else (e.rhs,)
        if any(isinstance(v, ast.Literal) and v.value.lower() in ("true", "false")
               for v in values):
            return 0.5
        if e.op in _SELECTIVE_OPS:
            return 0.05
        if e.op == "!=":
            return 0.95
        return 0.5
    return 0.5


def and_rank(sql: str, e: ast.Expr) -> float:
    """Order key of an AND operand: cost per event it rules out (``cost / (1 - sel)``),
    the classic order for independent checks evaluated with short-circuit."""
    return sql_cost(sql) / max(1.0 - selectivity(e), 0.02)


_FIXED_LIST = re.compile(r"list_filter\(\[((?:e\.\w+, )*e\.\w+)\], lambda x: x IS NOT NULL\)\Z")


def _fixed_list_columns(lhs_sql: str) -> list[str] | None:
    """The columns of a multi-valued field that is a fixed list of columns
    (``fd.ip`` = client and server address), else None."""
    m = _FIXED_LIST.match(lhs_sql)
    return None if m is None else m.group(1).split(", ")


class SqlGenerator:
    """Emit SQL for a condition checked by :class:`TypeChecker`."""

    def __init__(self, typed: Typed) -> None:
        self.typed = typed
        self.issues: list[CompileIssue] = []

    def emit(self, e: ast.Expr, negated: bool = False) -> str:
        """SQL for ``e``. Checks get ``coalesce(..., false)`` only under a ``not``:
        elsewhere a NULL (missing field) is already as good as false, because
        the expression is monotone there and is used as a filter/CASE condition.
        """
        if isinstance(e, ast.And):
            # cheap selective checks first: DuckDB evaluates a CASE condition's AND left to
            # right on the rows still true and stops when none is left, so a cheap check
            # that rules out most events spares the others (AND is commutative in SQL's
            # three-valued logic: the result is unchanged)
            emitted = [(self.emit(c, negated), c) for c in e.children]
            parts = [sql for sql, _ in sorted(emitted, key=lambda p: and_rank(*p))]
            return "(" + " AND ".join(parts) + ")"
        if isinstance(e, ast.Or):
            return "(" + " OR ".join(self.emit(c, negated) for c in e.children) + ")"
        if isinstance(e, ast.Not):
            return f"(NOT {self.emit(e.child, not negated)})"
        if isinstance(e, ast.Exists):
            lhs = self.typed.lhs[id(e)]
            if lhs.exists_sql:
                return f"coalesce({lhs.exists_sql}, false)"
            if lhs.multi:
                return f"coalesce(len({lhs.sql}) > 0, false)"
            return f"({lhs.sql} IS NOT NULL)"
        if isinstance(e, ast.Compare):
            try:
                sql = self._compare(e)
            except V.ValueError_ as err:
                self.issues.append(
                    CompileIssue("error", LOAD_ERR_COMPILE_CONDITION, str(err), e.span,
                                 getattr(err, "hint", None))
                )
                return "false"
            return f"coalesce({sql}, false)" if negated else sql
        raise V.ValueError_(f"cannot compile {type(e).__name__}")  # pragma: no cover

    # -- checks ------------------------------------------------------------
    def _compare(self, c: ast.Compare) -> str:
        lhs = self.typed.lhs[id(c)]
        rhs = self.typed.rhs[id(c)]
        op = "=" if c.op == "==" else c.op
        if isinstance(rhs, Operand):
            check_ip_rhs_field(lhs, rhs)
        if lhs.multi:
            if (isinstance(rhs, list) and op in ("in", "intersects") and c.modifier is None
                    and lhs.type not in (FieldType.IPNET, FieldType.IPADDR)):
                items = ", ".join(self._value(v, lhs.type) for v in rhs)
                return f"list_has_any({lhs.sql}, [{items}])" if rhs else "false"
            cols = _fixed_list_columns(lhs.sql)
            if cols is not None and op == "!=":
                # fd.ip / fd.net / fd.port != v: true when every address (port) there is
                # differs, as libsinsp's compare_ip/compare_net/compare_port (sip_cmp &&
                # dip_cmp); a listening socket has one, a descriptor that is no socket none
                checks = " AND ".join(
                    f"({col} IS NULL OR coalesce("
                    f"{self._scalar(Operand(col, lhs.type), op, rhs, c.modifier)}, false))"
                    for col in cols)
                present = " OR ".join(f"{col} IS NOT NULL" for col in cols)
                return f"(({present}) AND {checks})"
            if cols is not None:  # any element: one OR instead of a lambda per row
                return "(" + " OR ".join(
                    f"coalesce({self._scalar(Operand(col, lhs.type), op, rhs, c.modifier)}, "
                    "false)" for col in cols) + ")"
            if (isinstance(rhs, list) and op == "=" and c.modifier is None and len(rhs) == 1
                    and lhs.type not in (FieldType.IPNET, FieldType.IPADDR, FieldType.BYTES)):
                # any element equal: no lambda per row
                return f"list_contains({lhs.sql}, {self._value(rhs[0], lhs.type)})"
            inner = Operand("__v", lhs.type)
            pred = self._scalar(inner, op, rhs, c.modifier)
            return f"list_bool_or(list_transform({lhs.sql}, lambda __v: coalesce({pred}, false)))"
        return self._scalar(lhs, op, rhs, c.modifier)

    def _scalar(self, lhs: Operand, op: str, rhs: object, modifier: str | None) -> str:
        x = lhs.sql
        if isinstance(rhs, Operand):  # val(field)
            return self._field_cmp(x, lhs.type, op, rhs)
        assert isinstance(rhs, list)
        if modifier is not None:
            preds = [self._one(x, lhs.type, op, v) for v in rhs]
            if not preds:
                return "false"
            if modifier == "anyof":
                return "(" + " OR ".join(preds) + ")"
            if modifier == "allof":
                return "(" + " AND ".join(preds) + ")"
            total = " + ".join(f"CAST(coalesce({p}, false) AS INTEGER)" for p in preds)
            return f"({total} = 1)"
        if op == "pmatch":
            return pmatch_sql(x, [str(v) for v in rhs])
        if op in ("in", "intersects"):
            if not rhs:
                return "false"
            if lhs.type is FieldType.IPNET:
                return nets_sql(x, rhs)  # type: ignore[arg-type]
            if lhs.type is FieldType.IPADDR:
                return ips_sql(x, rhs)  # type: ignore[arg-type]
            if lhs.type is FieldType.BYTES:
                return "(" + " OR ".join(self._one(x, lhs.type, "=", v) for v in rhs) + ")"
            uniq = list(dict.fromkeys(self._value(v, lhs.type) for v in rhs))
            if len(uniq) > IN_MAP_THRESHOLD and lhs.type is FieldType.STRING:
                # inside a CASE, DuckDB tests IN lists item by item; a MAP lookup is hashed
                keys = ", ".join(f"{k}: true" for k in uniq)
                return f"map_contains(MAP {{{keys}}}, {x})"
            return f"({x} IN ({', '.join(uniq)}))"
        return self._one(x, lhs.type, op, rhs[0])

    def _value(self, v: object, t: FieldType) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return V.sql_num(v)
        if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return V.sql_str(str(v))
        if isinstance(v, bytes):
            return V.sql_str(v.hex().upper())
        return V.sql_str(str(v))

    def _one(self, x: str, t: FieldType, op: str, v: object) -> str:
        if t is FieldType.IPNET:
            if op not in ("=", "!="):
                raise V.ValueError_(f"'{op}' operator not supported for ip address and network filters")
            return net_sql(x, v, op == "!=")  # type: ignore[arg-type]
        if t is FieldType.IPADDR and op in ("=", "!=", "in", "intersects"):
            return ips_sql(x, [v], op == "!=")  # type: ignore[list-item]
        if t is FieldType.BYTES:
            hx = self._value(v if isinstance(v, bytes) else str(v).encode(), t)
            hex_x = f"hex({x})"
            if op in ("contains", "bcontains"):
                return f"regexp_matches({hex_x}, '^(?:..)*?' || {hx})"
            if op in ("startswith", "bstartswith"):
                return f"starts_with({hex_x}, {hx})"
            if op == "endswith":
                return f"(ends_with({hex_x}, {hx}) AND length({hex_x}) % 2 = 0)"
            return f"({hex_x} {_CMP[op]} {hx})"
        if op in _CMP:
            return f"({x} {_CMP[op]} {self._value(v, t)})"
        s = str(v)
        if op == "contains":
            return f"contains({x}, {V.sql_str(s)})"
        if op == "icontains":
            return f"contains(lower({x}), {V.sql_str(s.translate(_ASCII_LOWER))})"
        if op == "startswith":
            return f"starts_with({x}, {V.sql_str(s)})"
        if op == "endswith":
            return f"ends_with({x}, {V.sql_str(s)})"
        if op in ("glob", "iglob"):
            return glob_sql(x, s, casefold=op == "iglob")
        if op == "regex":
            return f"regexp_full_match({x}, {V.sql_str(regex.to_duckdb(s))})"
        if op == "pmatch":
            return pmatch_sql(x, [s])
        if op in ("in", "intersects"):
            return f"({x} = {self._value(v, t)})"
        raise V.ValueError_(f"operator '{op}' is not supported")

    def _field_cmp(self, x: str, t: FieldType, op: str, other: Operand) -> str:
        y = other.sql
        if other.multi:
            raise V.ValueError_("a multi-valued field cannot be the right-hand side")
        if op in _CMP:
            return f"({x} {_CMP[op]} {y})"
        if op == "contains":
            return f"contains({x}, {y})"
        if op == "icontains":
            return f"contains(lower({x}), lower({y}))"
        if op == "startswith":
            return f"starts_with({x}, {y})"
        if op == "endswith":
            return f"ends_with({x}, {y})"
        if op in ("in", "intersects"):
            return f"({x} = {y})"
        raise V.ValueError_(f"operator '{op}' does not support right-hand side fields in fcap")
