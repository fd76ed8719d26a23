"""Print an AST the way libs' ``ast::as_string`` does (``filter/ast.cpp``).

Falco's loader tests compare compiled conditions in this form, e.g.
``(evt.type = open and not proc.name = "a b")``: boolean nodes in
parentheses, values through ``escape_str``, transformer arguments joined by
``,`` without blanks.

One difference from libs: a list operator whose right side was a bare
identifier prints as a one-item list ``(name)`` (the parser stores it as a
:class:`~.ast.ListLiteral`), where libs prints ``name``.
"""

from __future__ import annotations

from .ast import (
    And,
    Compare,
    Exists,
    Field,
    FieldValue,
    Identifier,
    ListLiteral,
    Literal,
    Not,
    Or,
    Transform,
    TransformerList,
)
from .escaping import escape


def _arg(arg: str | None) -> str:
    if arg is None:
        return ""
    return '[""]' if arg == "" else f"[{escape(arg)}]"


def to_string(node) -> str:
    """The libs ``as_string`` text of an expression or operand."""
    if isinstance(node, And | Or):
        op = " and " if isinstance(node, And) else " or "
        return "(" + op.join(to_string(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return "not " + to_string(node.child)
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Exists):
        return to_string(node.lhs) + " exists"
    if isinstance(node, Compare):
        op = node.op if node.modifier is None else f"{node.op} {node.modifier}"
        return f"{to_string(node.lhs)} {op} {to_string(node.rhs)}"
    if isinstance(node, Field):
        return node.name + _arg(node.arg)
    if isinstance(node, Transform):
        return node.name + "(" + ",".join(to_string(a) for a in node.args) + ")" + _arg(node.arg)
    if isinstance(node, FieldValue):
        return "val(" + to_string(node.field) + ")" + _arg(node.arg)
    if isinstance(node, Literal):
        return escape(node.value)
    if isinstance(node, ListLiteral):
        return "(" + ", ".join(escape(i.value) for i in node.items) + ")"
    if isinstance(node, TransformerList):
        return "(" + ",".join(to_string(i) for i in node.items) + ")"
    raise TypeError(f"not an AST node: {node!r}")
