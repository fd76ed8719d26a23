"""The condition AST: frozen dataclasses, produced by the parser, consumed by
the macro resolver, the type checker and the SQL compiler.

It mirrors falcosecurity/libs ``userspace/libsinsp/filter/ast.h``: boolean
nodes (``And``, ``Or``, ``Not``), checks (``Compare``, ``Exists``), macro
references (``Identifier``), and the operand forms of a check: a field
(``Field``), a transformer applied to operands (``Transform``), a field used as
a value (``FieldValue``, the ``val(...)`` form), a scalar (``Literal``), a
list of scalars (``ListLiteral``) and the parenthesised operand list of
``join``/``concat`` (``TransformerList``). Every node carries the
:class:`Span` of the text it came from so that errors can point at it.

Normalisations done by the parser (so later passes see one form):

* a list operator (``in``, ``intersects``, ``pmatch``) or an operator with a
  modifier whose right side is a bare identifier (a name that was not a
  defined list) gets ``ListLiteral((Literal(name),))``: libs compiles that
  identifier as a single value;
* ``Compare.op`` never contains the modifier; ``Compare.modifier`` holds it.

Spans are offsets into the text that was parsed. ``Span.origin`` says which
text that was when it is not the condition being compiled (after macro
expansion, nodes coming from a macro carry ``origin="macro:<name>"``); the
rules loader maps a span back to a file position
(``fcap.analyze.rules.RuleSet.locate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """Character offsets ``[start, end)`` into the condition text (0-based)."""

    start: int = 0
    end: int = 0
    origin: str | None = None


@dataclass(frozen=True)
class Field:
    """A field reference such as ``proc.name``, ``proc.aname[2]``, ``evt.arg.flags``.

    ``arg`` is the bracketed argument text (``"2"`` for ``proc.aname[2]``,
    ``"flags"`` for ``evt.arg[flags]``), or None. The dotted form
    ``evt.arg.flags`` is kept as ``name="evt.arg.flags"``; the field catalog
    decides how a name splits into field and argument.
    """

    name: str
    arg: str | None = None
    span: Span = field(default=Span(), compare=False)

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}[{self.arg}]"


@dataclass(frozen=True)
class Transform:
    """A transformer: ``tolower(proc.name)``, ``len(...)``, ``join(",", (...))`` ...

    ``args`` holds the operands in order: fields, nested transforms, literals,
    or a ``TransformerList`` for the parenthesised list argument of join/concat.
    ``arg`` is an index or key applied to the result (``getopt(...)[-n]``).
    """

    name: str
    args: tuple[Operand, ...]
    arg: str | None = None
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class FieldValue:
    """``val(field)`` on the right side of a comparison: compare two fields."""

    field: Field
    arg: str | None = None
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Literal:
    """A scalar value exactly as written after unquoting and unescaping.

    ``quoted`` is True for ``"..."``/``'...'`` strings; numbers stay text here
    (the type pass converts them according to the field's type).
    """

    value: str
    quoted: bool = False
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class ListLiteral:
    """A parenthesised list ``(a, "b c", 3)`` after list-name substitution."""

    items: tuple[Literal, ...]
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class TransformerList:
    """The parenthesised list argument of ``join``/``concat``: ``(fd.name, "x", 1)``.

    Unlike :class:`ListLiteral`, items may be fields and transformers.
    """

    items: tuple[Field | Transform | Literal, ...]
    span: Span = field(default=Span(), compare=False)


Operand = Field | Transform | FieldValue | Literal | ListLiteral | TransformerList


@dataclass(frozen=True)
class Compare:
    """``lhs op rhs``.

    ``op`` is the operator as spelled in libs, lower-case (``=``, ``==``,
    ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``contains``, ``icontains``,
    ``bcontains``, ``startswith``, ``bstartswith``, ``endswith``, ``glob``,
    ``iglob``, ``regex``, ``in``, ``intersects``, ``pmatch``). ``modifier`` is
    ``oneof``/``anyof``/``allof`` for ``startswith oneof (a, b)``, else None.
    """

    lhs: Field | Transform
    op: str
    rhs: Operand
    modifier: str | None = None
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Exists:
    """``lhs exists``: the field can be extracted for this event."""

    lhs: Field | Transform
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Identifier:
    """A bare identifier in boolean position: a macro reference."""

    name: str
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Not:
    child: Expr
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class And:
    children: tuple[Expr, ...]
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Or:
    children: tuple[Expr, ...]
    span: Span = field(default=Span(), compare=False)


Expr = And | Or | Not | Compare | Exists | Identifier
