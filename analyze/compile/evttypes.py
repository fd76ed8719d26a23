"""The event-type set of a condition, computed as libsinsp does.

Port of the logic of ``libs:userspace/libsinsp/filter/ppm_codes.cpp``
(``ppm_event_codes``), over event *names* instead of event codes: ``and`` is
the intersection of its children's sets, ``or`` the union; negation is pushed
to the leaves (De Morgan); ``evt.type = x`` / ``!= x`` / ``in (...)`` give
explicit sets, ``evt.type exists`` and every other check are neutral (all
types); ``evt.num`` checks that are always false/true give the empty/full set.

Falco only evaluates a rule for events whose type is in the set; the compiler
folds ``evt_type IN (set)`` into each rule's predicate, which also makes the
one-pass evaluation cheap. Falco warns ``LOAD_NO_EVTTYPE`` when a rule
matches more than 100 event types.
"""

from __future__ import annotations

from fcap.analyze.condition import ast

from .evtnames import EVENT_NAMES

UNIVERSE: frozenset[str] = EVENT_NAMES
EVTTYPE_OPS = frozenset({"=", "==", "!=", "in"})


def _parse_u64(text: str) -> int | None:
    t = text.strip()
    sign = 1
    if t[:1] in "+-":
        sign = -1 if t[0] == "-" else 1
        t = t[1:]
    if not t.isdigit():
        return None
    return (sign * int(t)) % (1 << 64)


def _evt_num_invariant(c: ast.Compare) -> str | None:
    """'empty', 'all' or None, from evt.num >= 1 (libs ``evaluate_field_invariant``)."""
    lhs = c.lhs
    if not isinstance(lhs, ast.Field) or lhs.name != "evt.num" or lhs.arg is not None:
        return None
    if c.modifier is not None:
        return None
    if c.op == "in":
        if not isinstance(c.rhs, ast.ListLiteral):
            return None
        if not c.rhs.items:
            return "empty"
        return "empty" if all(_parse_u64(i.value) == 0 for i in c.rhs.items) else None
    if not isinstance(c.rhs, ast.Literal):
        return None
    n = _parse_u64(c.rhs.value)
    if n is None:
        return None
    table = {
        "=": "empty" if n == 0 else None,
        "==": "empty" if n == 0 else None,
        "!=": "all" if n == 0 else None,
        "<": "empty" if n <= 1 else None,
        "<=": "empty" if n == 0 else None,
        ">": "all" if n == 0 else None,
        ">=": "all" if n <= 1 else None,
    }
    return table.get(c.op)


class _Visitor:
    def __init__(self) -> None:
        self.negated = False
        self.has_codes = False
        self.codes: frozenset[str] = UNIVERSE

    def _invert(self, s: frozenset[str]) -> frozenset[str]:
        return UNIVERSE - s if self.has_codes else s

    def _try_invert(self, s: frozenset[str]) -> frozenset[str]:
        return self._invert(s) if self.negated else s

    def visit(self, e: ast.Expr) -> None:
        if isinstance(e, ast.And | ast.Or):
            conj = isinstance(e, ast.And) != self.negated
            acc = UNIVERSE if conj else frozenset()
            for c in e.children:
                self.visit(c)
                acc = acc & self.codes if conj else acc | self.codes
            self.codes = acc
        elif isinstance(e, ast.Not):
            self.codes = frozenset()
            self.negated = not self.negated
            self.visit(e.child)
            self.negated = not self.negated
        elif isinstance(e, ast.Compare):
            self._compare(e)
        elif isinstance(e, ast.Exists):
            self.has_codes = _is_evttype(e.lhs)
            self.codes = self._try_invert(UNIVERSE)
        else:  # Identifier: neutral
            self.has_codes = False
            self.codes = UNIVERSE

    def _compare(self, c: ast.Compare) -> None:
        self.has_codes = False
        inv = _evt_num_invariant(c)
        if inv is not None:
            self.has_codes = True
            self.codes = self._try_invert(frozenset() if inv == "empty" else UNIVERSE)
            return
        if c.op in EVTTYPE_OPS and _is_evttype(c.lhs):
            if isinstance(c.rhs, ast.ListLiteral):
                names = frozenset(i.value for i in c.rhs.items)
            elif isinstance(c.rhs, ast.Literal):
                names = frozenset({c.rhs.value})
            else:  # val(...) on evt.type is rejected by the type pass
                names = UNIVERSE
            self.has_codes = True
            codes = self._try_invert(names & UNIVERSE)
            if c.op == "!=":
                codes = self._invert(codes)
            self.codes = codes
            return
        self.codes = self._try_invert(UNIVERSE)


def _is_evttype(lhs: object) -> bool:
    return isinstance(lhs, ast.Field) and lhs.name in ("evt.type", "syscall.type") and lhs.arg is None


def event_types(expr: ast.Expr) -> frozenset[str]:
    """The event-type names for which ``expr`` can be true (as libs computes it)."""
    v = _Visitor()
    v.visit(expr)
    return v.codes


def is_all(types: frozenset[str]) -> bool:
    """True when the set is the whole universe (no pre-filter possible)."""
    return types >= UNIVERSE
