"""Field types and the resolved-field contract between the catalog and the compiler.

The catalog (:mod:`fcap.analyze.fields.catalog`) maps a Falco field name and
its optional argument to a :class:`FieldRef`: a DuckDB SQL expression over the
enriched events relation (aliased ``e``) plus the libsinsp type that decides
how comparisons behave. The compiler never hard-codes a column name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FieldType(Enum):
    """libsinsp's ``ppm_param_type`` families, as far as comparisons care."""

    STRING = "string"  # PT_CHARBUF, PT_FSPATH, PT_FSRELPATH: string compare
    BYTES = "bytes"  # PT_BYTEBUF: bcontains/bstartswith
    INT = "int"  # PT_INT8..64, PT_ERRNO, PT_PID, PT_FD: numeric compare
    UINT = "uint"  # PT_UINT8..64, PT_FLAGS*, PT_MODE, PT_UID, PT_GID, PT_PORT
    BOOL = "bool"  # PT_BOOL: true/false
    ABSTIME = "abstime"  # PT_ABSTIME: ns since epoch
    RELTIME = "reltime"  # PT_RELTIME: ns
    IPADDR = "ipaddr"  # PT_IPADDR: compares with addresses and CIDR networks
    IPNET = "ipnet"  # PT_IPNET
    PORT = "port"  # PT_PORT (numeric)
    DOUBLE = "double"


@dataclass(frozen=True)
class FieldRef:
    """A field resolved for one use in a condition or an output template.

    ``sql`` is a DuckDB expression over alias ``e``. When ``multi`` is True the
    expression is a ``LIST`` (e.g. ``proc.aname`` without index: every
    ancestor), and comparisons are true when any element matches, as in
    libsinsp's multi-value fields. ``exists_sql`` is the expression for
    ``field exists`` (defaults to ``sql IS NOT NULL``).
    """

    name: str  # canonical Falco name including argument, e.g. "proc.aname[2]"
    sql: str
    type: FieldType
    multi: bool = False
    exists_sql: str | None = None
    #: Event types for which the field can be non-null (None = any); used by
    #: the compiler for nothing semantic, only for diagnostics.
    note: str | None = None


class Status(Enum):
    """How completely fcap provides a Falco field."""

    SUPPORTED = "supported"
    PARTIAL = "partial"
    UNSUPPORTED = "not supported"


class ArgKind(Enum):
    """What a field accepts between brackets (libsinsp ``EPF_ARG_*``)."""

    NONE = "none"  # no argument allowed
    INDEX = "index"  # required integer, e.g. proc.aname[2] (no-index form: see multi_sql)
    KEY = "key"  # required key, e.g. evt.arg[flags] / evt.arg.flags
    INDEX_OR_KEY = "index or key"  # evt.arg[0] and evt.arg[name]; mount.dest[0] / [/src]
    OPTIONAL_INDEX = "optional index"  # proc.aname, proc.aname[3]
    OPTIONAL_KEY = "optional key"  # proc.env, proc.env[HOME]


@dataclass(frozen=True)
class FieldDef:
    """One Falco field as the catalog describes it (for lookup and for docs/fields.md).

    ``column`` is the ``events`` view column of the field's plain form (None when
    the field only exists with an argument or is not supported). ``note``
    explains a partial status or the reason a field is not supported.
    """

    name: str
    type: FieldType
    status: Status
    column: str | None
    desc: str
    note: str = ""
    arg: ArgKind = ArgKind.NONE
    source: str = "syscall"  # "syscall" (libsinsp), "container" (container plugin), "fcap"
    deprecated: bool = False
