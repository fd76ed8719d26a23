"""The Falco field catalog: field name (+ argument) -> SQL over the ``events`` view.

``lookup(name, arg)`` resolves a field as written in a condition or an output
template to a :class:`~fcap.analyze.fields.types.FieldRef` whose ``sql`` reads
the enriched events relation aliased ``e`` (built by
:func:`fcap.analyze.enrich.build`). Fields fcap cannot provide resolve to a
typed NULL (Falco's "field not available": every comparison is false) with a
``note`` saying why, so that upstream rule files still load; misspelt fields
raise :class:`UnknownFieldError` with suggestions.
"""

from __future__ import annotations

import difflib
import re

from fcap.analyze.fields import evtargs
from fcap.analyze.fields.defs_container import CONTAINER_FIELDS, SHELL_FIELDS
from fcap.analyze.fields.defs_evt import EVT_FIELDS, FD_FIELDS, OTHER_FIELDS
from fcap.analyze.fields.defs_proc import PROC_FIELDS, USER_FIELDS
from fcap.analyze.fields.types import ArgKind, FieldDef, FieldRef, FieldType, Status

from fcap.errors import FcapError

#: Every field fcap knows: Falco's syscall source, the container plugin, fcap extensions.
FIELDS: tuple[FieldDef, ...] = (
    *EVT_FIELDS, *FD_FIELDS, *OTHER_FIELDS, *PROC_FIELDS, *USER_FIELDS, *CONTAINER_FIELDS,
    *SHELL_FIELDS,
)
_BY_NAME: dict[str, FieldDef] = {f.name: f for f in FIELDS}

_SQL_TYPE = {
    FieldType.STRING: "VARCHAR", FieldType.BYTES: "BLOB", FieldType.INT: "BIGINT",
    FieldType.UINT: "UBIGINT", FieldType.BOOL: "BOOLEAN", FieldType.ABSTIME: "BIGINT",
    FieldType.RELTIME: "BIGINT", FieldType.IPADDR: "VARCHAR", FieldType.IPNET: "VARCHAR",
    FieldType.PORT: "UBIGINT", FieldType.DOUBLE: "DOUBLE",
}

#: Ancestor fields: name -> (list column in the view, self first; the "any" form's kind).
_ANCESTOR = {
    "proc.aname": "proc_anames", "proc.aexe": "proc_aexes", "proc.aexepath": "proc_aexepaths",
    "proc.acmdline": "proc_acmdlines", "proc.apid": "proc_apids", "proc.aargs": "proc_aargss",
    "proc.aenv": "proc_aenvs",
}
#: Ancestor fields that match any ancestor when used without an index (libsinsp compare_full_*).
_ANY_ANCESTOR = {"proc.aname", "proc.aexe", "proc.aexepath", "proc.acmdline", "proc.apid",
                 "proc.aenv"}
_MOUNT_PART = {
    "container.mount": "concat_ws(':', m.source, m.dest, m.mode, CASE WHEN m.rw THEN 'true' "
                       "ELSE 'false' END, m.propagation)",
    "container.mount.source": "m.source", "container.mount.dest": "m.dest",
    "container.mount.mode": "m.mode",
    "container.mount.rdwr": "CASE WHEN m.rw THEN 'true' ELSE 'false' END",
    "container.mount.propagation": "m.propagation",
}


class UnknownFieldError(FcapError):
    """A field name (or its argument) that no Falco field matches."""

    def __init__(self, name: str, suggestions: list[str], message: str | None = None) -> None:
        hint = f"did you mean {suggestions[0]}?" if suggestions else None
        super().__init__(message or f"unknown field '{name}'", hint=hint)
        self.name = name
        self.suggestions = suggestions


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _null(d: FieldDef) -> str:
    return f"CAST(NULL AS {_SQL_TYPE[d.type]})"


def _split(name: str, arg: str | None) -> tuple[str, str | None]:
    """Split the dotted argument forms (``evt.arg.flags``, ``evt.rawarg.res``)."""
    if arg is None:
        for base in ("evt.arg", "evt.rawarg"):
            if name.startswith(base + ".") and name[len(base) + 1:]:
                return base, name[len(base) + 1:]
    return name, arg


def _suggest(name: str) -> list[str]:
    return difflib.get_close_matches(name, list(_BY_NAME), n=3, cutoff=0.6)


def _index(name: str, arg: str) -> int:
    if not re.fullmatch(r"\d+", arg.strip()):
        raise UnknownFieldError(
            f"{name}[{arg}]", [], f"field '{name}' needs a numeric index, got '{arg}'"
        )
    return int(arg)


def lookup(name: str, arg: str | None = None) -> FieldRef:
    """Resolve ``name`` (with its bracketed ``arg``) to SQL over the events view alias ``e``."""
    name, arg = _split(name, arg)
    d = _BY_NAME.get(name)
    if d is None:
        raise UnknownFieldError(name, _suggest(name))
    full = name if arg is None else f"{name}[{arg}]"
    if d.status is Status.UNSUPPORTED:
        return FieldRef(full, _null(d), d.type, note=f"not supported: {d.note}")
    note = f"partial: {d.note}" if d.status is Status.PARTIAL else None
    if arg is None and d.arg in (ArgKind.INDEX, ArgKind.KEY, ArgKind.INDEX_OR_KEY):
        if name in ("evt.arg", "evt.rawarg"):
            raise UnknownFieldError(full, [], f"field '{name}' needs an argument "
                                    f"(e.g. {name}.flags or {name}[0])")
        raise UnknownFieldError(full, [], f"field '{name}' needs an argument, e.g. {name}[...]")
    if arg is not None and d.arg is ArgKind.NONE:
        raise UnknownFieldError(full, [], f"field '{name}' does not take an argument")
    if arg is not None or name in _ANCESTOR or d.column is None:
        return _with_arg(d, full, arg, note)
    return FieldRef(full, f"e.{d.column}", d.type, note=note)


def _with_arg(d: FieldDef, full: str, arg: str | None, note: str | None) -> FieldRef:
    name = d.name
    if name in _ANCESTOR:
        col = _ANCESTOR[name]
        if arg is None:
            if name in _ANY_ANCESTOR:
                return FieldRef(full, f"e.{col}[2:]", d.type, multi=True, note=note)
            return FieldRef(full, f"nullif(array_to_string(e.{col}[2:], ' '), '')", d.type,
                            note=note)
        if name == "proc.aenv" and not re.fullmatch(r"\d+", arg):
            return FieldRef(full, _env_lookup("list_filter(e.proc_aenv_lists[2:], lambda x: x IS NOT NULL)",
                                              arg, any_=True), d.type, note=note)
        return FieldRef(full, f"e.{col}[{_index(name, arg) + 1}]", d.type, note=note)
    if name in ("evt.arg", "evt.rawarg"):
        return _evt_arg(full, name, arg or "", d, note)
    if name == "proc.args":
        if arg is None:
            return FieldRef(full, "e.proc_args", d.type, note=note)
        # libsinsp (TYPE_ARGS with an index): "" past the last argument, not a missing value
        return FieldRef(full, f"coalesce(e.proc_argv[{_index(name, arg) + 2}], '')", d.type,
                        note=note)
    if name in ("proc.env",):
        if arg is None:
            return FieldRef(full, "e.proc_env", d.type, note=note)
        return FieldRef(full, _env_lookup("[e.proc_env_list]", arg), d.type, note=note)
    if name in _MOUNT_PART:
        return FieldRef(full, _mount_sql(name, arg or ""), d.type, note=note)
    if name in ("container.label", "k8s.pod.label"):
        return FieldRef(full, f"element_at(e.container_label_map, {_q(arg or '')})[1]", d.type,
                        note=note)
    if name == "thread.cgroup":
        return FieldRef(full, "e.thread_cgroup", d.type, note=note)
    if name == "evt.type.is":
        return FieldRef(full, f"CAST(e.evt_type = {_q(arg or '')} AS UBIGINT)", d.type, note=note)
    if name == "evt.abspath":
        col = "e.path2" if arg in ("dst", "target") else "e.path"
        return FieldRef(full, f"CAST({col} AS VARCHAR)", d.type, note=note)
    if name == "fd.ip":
        return FieldRef(full, "list_filter([e.fd_cip, e.fd_sip], lambda x: x IS NOT NULL)", d.type,
                        multi=True, note=note)
    if name == "fd.net":
        return FieldRef(full, "list_filter([e.fd_cip, e.fd_sip], lambda x: x IS NOT NULL)", d.type,
                        multi=True, note=note)
    if name == "fd.port":
        return FieldRef(full, "list_filter([e.fd_cport, e.fd_sport], lambda x: x IS NOT NULL)",
                        d.type, multi=True, note=note)
    if name == "fd.proto":
        return FieldRef(full, _null(d), d.type, note=note)
    raise UnknownFieldError(full, [], f"field '{name}' cannot be resolved")  # pragma: no cover


def _env_lookup(lists_sql: str, var: str, any_: bool = False) -> str:
    """Value of ``var`` in a LIST of env lists (first match), libsinsp's get_env."""
    prefix = _q(var + "=")
    inner = (f"list_filter(flatten(list_transform({lists_sql}, lambda l: "
             f"list_filter(l, lambda x: starts_with(x, {prefix})))), lambda x: x IS NOT NULL)")
    return f"substr({inner}[1], {len(var) + 2})"


def _mount_sql(name: str, arg: str) -> str:
    part = _MOUNT_PART[name]
    if re.fullmatch(r"\d+", arg):
        return (f"(SELECT {part} FROM (SELECT unnest(e.container_mount_list) AS m) "
                f"LIMIT 1 OFFSET {int(arg)})")
    key = "m.dest" if name == "container.mount.source" else "m.source"
    return (f"(list_transform(list_filter(e.container_mount_list, lambda m: "
            f"regexp_matches({key}, {_q(arg)})), lambda m: {part}))[1]")


def _evt_arg(full: str, name: str, arg: str, d: FieldDef, note: str | None) -> FieldRef:
    rendered = name == "evt.arg"
    if re.fullmatch(r"\d+", arg.strip()):
        if not rendered:
            raise UnknownFieldError(full, [], "evt.rawarg takes a parameter name, not an index")
        return FieldRef(full, evtargs.index_sql(int(arg)), FieldType.STRING, note=note)
    if not evtargs.known_param(arg):
        names = sorted({p for sc in evtargs.PARAMS for p in evtargs.param_names(sc)})
        sugg = [f"{name}.{s}" for s in difflib.get_close_matches(arg, names, n=3)]
        raise UnknownFieldError(full, sugg, f"no event type has a parameter '{arg}'")
    sql = evtargs.arg_sql(arg, rendered=rendered)
    if rendered:
        return FieldRef(full, sql, FieldType.STRING, note=note)
    ftype = FieldType.INT if "AS BIGINT" in sql else FieldType.STRING
    return FieldRef(full, sql, ftype, note=note)


def field(name: str) -> FieldDef:
    """The definition of a field by its base name (KeyError when unknown)."""
    return _BY_NAME[name]
