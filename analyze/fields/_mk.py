"""Small constructors that keep the field definition tables readable."""

from __future__ import annotations

from fcap.analyze.fields.types import ArgKind, FieldDef, FieldType, Status


def sup(
    name: str,
    type_: FieldType,
    column: str | None,
    desc: str,
    *,
    arg: ArgKind = ArgKind.NONE,
    source: str = "syscall",
    note: str = "",
    deprecated: bool = False,
) -> FieldDef:
    """A supported field."""
    return FieldDef(name, type_, Status.SUPPORTED, column, desc, note, arg, source, deprecated)


def part(
    name: str,
    type_: FieldType,
    column: str | None,
    desc: str,
    note: str,
    *,
    arg: ArgKind = ArgKind.NONE,
    source: str = "syscall",
    deprecated: bool = False,
) -> FieldDef:
    """A field fcap provides with a documented difference from libsinsp."""
    return FieldDef(name, type_, Status.PARTIAL, column, desc, note, arg, source, deprecated)


def unsup(
    name: str,
    type_: FieldType,
    reason: str,
    *,
    arg: ArgKind = ArgKind.NONE,
    source: str = "syscall",
    deprecated: bool = False,
) -> FieldDef:
    """A field fcap cannot provide; ``reason`` says why."""
    return FieldDef(name, type_, Status.UNSUPPORTED, None, "", reason, arg, source, deprecated)
