"""Reading ``rule`` items and their ``exceptions`` (part of the reader).

Mirrors the rule branch of ``read_item`` and ``read_rule_exceptions`` in
``falco:userspace/engine/rule_loader_reader.cpp``. Mixed into
:class:`fcap.analyze.rules.reader.Reader`, which provides ``_val``, ``_seq``,
``_overrides`` and ``_warn_unknown_keys``.
"""

from __future__ import annotations

from . import diagnostics as d
from .collector import Entry, ExceptionInfo, RuleInfo, RuleUpdate
from .diagnostics import LoadError
from .model import Priority
from .yamlsrc import MappingNode, Node, ScalarNode, SequenceNode, YamlFile, get, is_null

RULE_KEYS = ("rule", "condition", "output", "desc", "priority", "source", "enabled", "capture",
             "capture_duration", "warn_evttypes", "skip-if-unknown-filter", "tags", "exceptions",
             "override", "append")
RULE_APPENDABLE = ("condition", "output", "desc", "tags", "exceptions")
RULE_REPLACEABLE = ("condition", "output", "desc", "priority", "capture", "capture_duration",
                    "tags", "exceptions", "enabled", "warn_evttypes", "skip-if-unknown-filter")


class _Ctx:
    """What a message is about: item type and name, and the YAML file."""

    def __init__(self, y: YamlFile, kind: str, name: str = "") -> None:
        self.y = y
        self.kind = kind
        self.name = name

    def error(self, message: str, node: Node | None, code: str = d.YAML_VALIDATE,
              hint: str | None = None) -> LoadError:
        return LoadError(code, message, self.y.loc(node), self.kind, self.name, hint)


class RuleItemsMixin:
    """The rule part of the reader."""

    # -- rules ------------------------------------------------------------------------
    def _tags(self, ctx: _Ctx, item: Node) -> set[str] | None:
        tags = self._seq(ctx, item, "tags", optional=True)
        return None if tags is None else set(tags)

    def _priority(self, ctx: _Ctx, item: Node) -> Priority:
        text = self._val(ctx, item, "priority")
        try:
            return Priority.parse(text)
        except ValueError:
            raise ctx.error("Invalid priority", get(item, "priority"),
                            hint="one of emergency, alert, critical, error, warning, notice, "
                            "informational (or info), debug") from None

    def _rule(self, y: YamlFile, item: Node) -> None:
        name = self._val(_Ctx(y, "rule"), item, "rule")
        ctx = _Ctx(y, "rule", name)
        loc = y.loc(item)
        source = self._val(ctx, item, "source", optional=True, can_be_empty=True) or ""
        has_append = self._val(ctx, item, "append", "bool", optional=True) or False
        if has_append:
            self.sink.warning(d.DEPRECATED_ITEM, d.WARNING_APPEND, y.loc(get(item, "append")),
                              item_type="rule", item_name=name)
        app, rep = self._overrides(ctx, item, RULE_APPENDABLE, RULE_REPLACEABLE)
        if has_append and (app or rep):
            raise ctx.error(d.ERROR_OVERRIDE_APPEND, item)
        if app or rep:
            self._rule_overrides(ctx, item, name, source, app, rep, loc)
        elif has_append:
            up = RuleUpdate(name, loc, source=source)
            if get(item, "condition") is not None:
                up.cond = self._val(ctx, item, "condition", "pt")
            if get(item, "exceptions") is not None:
                up.exceptions = self._exceptions(ctx, item, append=True)
            self.col.append_rule(up, self.field_ok)
        elif all(get(item, k) is None for k in ("condition", "output", "desc", "priority")):
            enabled = self._val(ctx, item, "enabled", "bool")
            self.sink.warning(d.DEPRECATED_ITEM, d.WARNING_ENABLED, loc, item_type="rule",
                              item_name=name)
            self.col.enable_rule(name, enabled, loc)
        else:
            self._define_rule(ctx, item, name, loc)
        self._warn_unknown_keys(ctx, item, RULE_KEYS)

    def _soft(self, fn, *args, **kw):
        """Decode a value; on error record it and return None (the item is
        still defined, so that its condition is checked too)."""
        try:
            return fn(*args, **kw)
        except LoadError as e:
            self.sink.add(e)
            return None

    def _define_rule(self, ctx: _Ctx, item: Node, name: str, loc) -> None:
        y = ctx.y
        info = RuleInfo(name, loc)
        info.cond = self._val(ctx, item, "condition", "pt")
        info.cond_loc = y.loc(get(item, "condition"))
        info.output = (self._soft(self._val, ctx, item, "output") or "").strip()
        info.output_loc = y.loc(get(item, "output"))
        info.desc = self._soft(self._val, ctx, item, "desc") or ""
        prio = self._soft(self._priority, ctx, item)
        info.priority = Priority.DEBUG if prio is None else prio
        src = self._soft(self._val, ctx, item, "source", optional=True)
        if src is not None:
            info.source = src
        for key, attr, kind in (("enabled", "enabled", "bool"), ("capture", "capture", "bool"),
                                ("capture_duration", "capture_duration", "uint"),
                                ("warn_evttypes", "warn_evttypes", "bool"),
                                ("skip-if-unknown-filter", "skip_if_unknown_filter", "bool")):
            v = self._soft(self._val, ctx, item, key, kind, optional=True)
            if v is not None:
                setattr(info, attr, v)
        info.tags = self._soft(self._tags, ctx, item) or set()
        info.exceptions = self._exceptions(ctx, item, append=False)
        self.col.define_rule(info, self.field_ok)

    def _rule_overrides(self, ctx: _Ctx, item: Node, name: str, source: str, app: set[str],
                        rep: set[str], loc) -> None:
        expected = {k for k in (*RULE_APPENDABLE, *RULE_REPLACEABLE) if get(item, k) is not None}

        def take(ops: set[str], kind: str, key: str) -> bool:
            if key not in ops:
                return False
            if key not in expected:
                raise ctx.error(f"An {kind} override for '{key}' was specified but '{key}' is "
                                f"not defined", item)
            expected.discard(key)
            return True

        def update(ops: set[str], kind: str) -> RuleUpdate:
            """The keys append and replace share: condition, exceptions, output, desc, tags."""
            up = RuleUpdate(name, loc)
            if take(ops, kind, "condition"):
                up.source = source
                up.cond = self._val(ctx, item, "condition", "pt")
            if take(ops, kind, "exceptions"):
                up.exceptions = self._exceptions(ctx, item, append=kind == "append")
            if take(ops, kind, "output"):
                up.output = self._val(ctx, item, "output")
            if take(ops, kind, "desc"):
                up.desc = self._val(ctx, item, "desc")
            if take(ops, kind, "tags"):
                up.tags = self._tags(ctx, item)
            return up

        if app:
            self.col.append_rule(update(app, "append"), self.field_ok)
        if rep:
            up = update(rep, "replace")
            if take(rep, "replace", "priority"):
                up.priority = self._priority(ctx, item)
            for key, attr, kind in (("capture", "capture", "bool"),
                                    ("capture_duration", "capture_duration", "uint"),
                                    ("enabled", "enabled", "bool"),
                                    ("warn_evttypes", "warn_evttypes", "bool"),
                                    ("skip-if-unknown-filter", "skip_if_unknown_filter", "bool")):
                if take(rep, "replace", key):
                    setattr(up, attr, self._val(ctx, item, key, kind))
            self.col.replace_rule(up)
        for key in sorted(expected):
            raise ctx.error(f"Unexpected key '{key}': no corresponding entry under 'override' is "
                            f"defined.", get(item, key))

    # -- exceptions ---------------------------------------------------------------------
    def _entry(self, ctx: _Ctx, node: Node | None, key: str | None, parent: Node, *,
               optional: bool) -> Entry:
        if node is None:
            if optional:
                return Entry()
            raise ctx.error(f"Item has no mapping for key '{key}'", parent)
        out = Entry(defined=True)
        if isinstance(node, ScalarNode) and not is_null(node):
            if node.value == "":
                raise ctx.error("Value must be non-empty", node)
            out.item = node.value
            out.pt = ctx.y.postext(node)
        elif isinstance(node, SequenceNode):
            out.is_list = True
            for v in node.value:
                out.items.append(self._entry(ctx, v, None, node, optional=False))
        return out

    def _exceptions(self, ctx: _Ctx, item: Node, *, append: bool) -> list[ExceptionInfo]:
        exs = get(item, "exceptions")
        out: list[ExceptionInfo] = []
        if exs is None or is_null(exs):
            return out
        if not isinstance(exs, SequenceNode):
            raise ctx.error("Rule exceptions must be a sequence", exs)
        for ex in exs.value:
            tmp = _Ctx(ctx.y, "exception")
            if not isinstance(ex, MappingNode):
                raise tmp.error("Rule exception must be a mapping", ex)
            name = self._val(tmp, ex, "name")
            ectx = _Ctx(ctx.y, "exception", name)
            if any(e.name == name for e in out):
                self.sink.warning(d.EXCEPTION_NAME_NOT_UNIQUE, f"Multiple definitions of "
                                  f"exception '{name}' in the same rule", ctx.y.loc(ex),
                                  item_type="exception", item_name=name)
            fields = self._entry(ectx, get(ex, "fields"), "fields", ex, optional=append)
            comps = self._entry(ectx, get(ex, "comps"), "comps", ex, optional=True)
            values: list[Entry] = []
            vnode = get(ex, "values")
            if vnode is not None:
                if not isinstance(vnode, SequenceNode):
                    raise ectx.error("Rule exception values must be a sequence", vnode)
                for v in vnode.value:
                    values.append(self._entry(ectx, v, None, vnode, optional=False))
            elif append:
                self.sink.warning(d.APPEND_NO_VALUES, "Overriding/appending exception with no "
                                  "values", ctx.y.loc(ex), item_type="exception", item_name=name)
            out.append(ExceptionInfo(name, fields, comps, values, ctx.y.loc(ex),
                                     ctx.y.code(ex.start_mark.index)))
        return out
