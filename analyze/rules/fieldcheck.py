"""Is a text a valid left-hand side field (or transformer) expression?

Falco checks each exception field with ``falco_source::is_valid_lhs_field``:
the text must parse as a field or transformer expression
(``parser::parse_field_or_transformer``) and name fields the source knows.
Here the field names are checked against fcap's field catalog
(:mod:`fcap.analyze.fields.catalog`).
"""

from __future__ import annotations

import functools

from ..condition.ast import Exists, Field, Transform, TransformerList
from ..condition.parser import ConditionSyntaxError, parse_condition


def _fields(node) -> list[Field]:
    if isinstance(node, Field):
        return [node]
    if isinstance(node, Transform):
        return [f for a in node.args for f in _fields(a)]
    if isinstance(node, TransformerList):
        return [f for a in node.items for f in _fields(a)]
    return []


@functools.lru_cache(maxsize=4096)
def field_ok(text: str) -> bool:
    """True when ``text`` is a field or transformer expression over known fields."""
    try:
        expr = parse_condition(f"{text} exists")
    except ConditionSyntaxError:
        return False
    if not isinstance(expr, Exists):
        return False
    try:
        from fcap.analyze.fields import catalog
    except ImportError:  # pragma: no cover - catalog not installed
        return True
    for f in _fields(expr.lhs):
        try:
            catalog.lookup(f.name, f.arg)
        except catalog.UnknownFieldError:
            return False
    return True
