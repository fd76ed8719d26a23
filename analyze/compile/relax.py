"""Pre-filters implied by rule conditions: the replay's cheap first scan.

A rule's *relaxation* is a predicate true for every event the rule matches
(and for some it does not): each check the first scan cannot evaluate
exactly is replaced by the constant that can only widen the result -- ``true``
where the check counts positively, ``false`` under an odd number of ``not``
-- and ``and``/``or``/``not`` are kept. Since the compiled conditions are
two-valued (a check on a missing field is false, see :mod:`.sqlgen`), this is
monotone and sound: rule matches imply relaxation true. The replay
(:mod:`fcap.analyze.engine`) keeps the events some enabled rule's relaxation
accepts, then evaluates the exact conditions over those only, so the alerts
are the same whatever the relaxation lets through.

What the first scan cannot evaluate exactly depends on the columns a check
reads (:func:`fcap.analyze.fields.columns.needs`), since it reads the raw row
alone (:func:`fcap.analyze.enrich.candidates`):

* ``join`` columns (process chain, users, container ...): always relaxed;
* ``fd`` columns (the descriptor record valid at the event): exact on the
  rows whose record is their own (opens, sockets, accepts that succeeded) or
  that have no descriptor, where the scan computes the record from the row
  and sets ``e.fc_fdk``; relaxed on the others.
"""

from __future__ import annotations

import re

from fcap.analyze.condition import ast
from fcap.analyze.fields.columns import needs, sql_needs

from .sqlgen import SqlGenerator
from .typecheck import Typed

#: The pre-filter view's flag: the row's descriptor columns are exact.
FD_KNOWN = "e.fc_fdk"
_COLUMN = re.compile(r"\be\.([A-Za-z_][A-Za-z0-9_]*)")


class RelaxGenerator(SqlGenerator):
    """:class:`SqlGenerator` emitting the relaxation of a condition."""

    def __init__(self, typed: Typed) -> None:
        super().__init__(typed)
        self.needs = needs()

    def emit(self, e: ast.Expr, negated: bool = False) -> str:
        # constants folded here keep the pre-filter's SQL small (DuckDB plans it per scan)
        if isinstance(e, ast.And | ast.Or):
            unit, zero = ("true", "false") if isinstance(e, ast.And) else ("false", "true")
            parts = [self.emit(c, negated) for c in e.children]
            if zero in parts:
                return zero
            parts = list(dict.fromkeys(p for p in parts if p != unit))
            if not parts:
                return unit
            joiner = " AND " if isinstance(e, ast.And) else " OR "
            return parts[0] if len(parts) == 1 else "(" + joiner.join(parts) + ")"
        if isinstance(e, ast.Not):
            inner = self.emit(e.child, not negated)
            return {"true": "false", "false": "true"}.get(inner, f"(NOT {inner})")
        if not isinstance(e, ast.Compare | ast.Exists):
            return super().emit(e, negated)
        sql = super().emit(e, negated)
        kinds = set(sql_needs(sql))  # inline expressions (e.g. evt.arg.uid's user lookup)
        for col in _COLUMN.findall(sql):
            kinds |= self.needs.get(col, frozenset())
        wide = "false" if negated else "true"  # the value that only widens the result
        if "join" in kinds:
            return wide
        if "fd" in kinds:
            return f"(CASE WHEN {FD_KNOWN} THEN coalesce({sql}, false) ELSE {wide} END)"
        return sql


def relaxed(typed: Typed, expr: ast.Expr) -> str:
    """The relaxation of a checked condition: SQL over alias ``e`` (see the module doc)."""
    return RelaxGenerator(typed).emit(expr)
