"""The reader: YAML documents -> collector calls, as Falco's reader does.

Mirrors ``falco:userspace/engine/rule_loader_reader.cpp`` (keys, checks,
messages, error vs warning). Difference: Falco stops reading a file at its
first error; here the offending item is skipped and reading goes on, so that
every problem is reported at once.
"""

from __future__ import annotations

import re

import yaml

from . import diagnostics as d
from .collector import Collector, ListInfo, MacroInfo
from .diagnostics import LoadError
from .reader_rules import RuleItemsMixin, _Ctx
from .version import Version
from .yamlsrc import (
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    YamlFile,
    compose_all,
    decode_bool,
    decode_uint,
    get,
    is_null,
    keys,
)

_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_BARESTR = re.compile(r"[^()\"'\s=,]+")

LIST_KEYS = ("list", "items", "append", "override")
MACRO_KEYS = ("macro", "condition", "append", "override")


class Reader(RuleItemsMixin):
    def __init__(self, collector: Collector, sink: d.Sink, field_ok) -> None:
        self.col = collector
        self.sink = sink
        self.field_ok = field_ok

    # -- entry point -----------------------------------------------------------------
    def read(self, y: YamlFile) -> None:
        try:
            docs = compose_all(y.text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            loc = y.mark_loc(mark) if mark is not None else y.loc(None)
            problem = getattr(e, "problem", None) or str(e)
            self.sink.error(d.YAML_PARSE, f"YAML parse error: {problem}", loc,
                            item_type="rules content")
            return
        for doc in docs:
            if doc is None or is_null(doc):
                continue
            if not isinstance(doc, MappingNode | SequenceNode):
                self.sink.error(d.YAML_VALIDATE, "Rules content is not yaml", y.loc(doc),
                                item_type="rules content")
                continue
            if not isinstance(doc, SequenceNode):
                self.sink.error(d.YAML_VALIDATE, "Rules content is not yaml array of objects",
                                y.loc(doc), item_type="rules content")
                continue
            for item in doc.value:
                if is_null(item):
                    continue
                try:
                    self.read_item(y, item)
                except LoadError as e:
                    self.sink.add(e)

    # -- value decoding (yaml-cpp semantics) ------------------------------------------
    def _val(self, ctx: _Ctx, item: Node, key: str, kind: str = "str", *,
             optional: bool = False, can_be_empty: bool = False):
        val = get(item, key)
        if val is None:
            if optional:
                return None
            raise ctx.error(f"Item has no mapping for key '{key}'", item)
        if is_null(val):
            if can_be_empty:
                return ""
            raise ctx.error(f"Mapping for key '{key}' is empty", val)
        if not isinstance(val, ScalarNode):
            raise ctx.error("Value is not a scalar value", val)
        if val.value == "":
            if can_be_empty:
                return ""
            raise ctx.error("Value must be non-empty", val)
        if kind == "str":
            return val.value
        if kind == "pt":
            return ctx.y.postext(val)
        out = decode_bool(val.value) if kind == "bool" else decode_uint(val.value)
        if out is None:
            raise ctx.error("Can't decode YAML scalar value", val)
        return out

    def _seq(self, ctx: _Ctx, item: Node, key: str, *, optional: bool) -> list[str] | None:
        val = get(item, key)
        if val is None:
            if optional:
                return None
            raise ctx.error(f"Item has no mapping for key '{key}'", item)
        if not isinstance(val, SequenceNode):
            raise ctx.error("Value is not a sequence", val)
        out = []
        for v in val.value:
            if not isinstance(v, ScalarNode) or is_null(v):
                raise ctx.error("sequence value is not scalar", v)
            out.append(v.value)
        return out

    def _warn_unknown_keys(self, ctx: _Ctx, item: Node, expected) -> None:
        for key, knode in keys(item):
            if key not in expected:
                self.sink.warning(d.UNKNOWN_KEY, f"Unknown key '{key}'. The key will be ignored.",
                                  ctx.y.loc(knode), item_type=ctx.kind, item_name=ctx.name,
                                  hint=d.did_you_mean(key, expected))

    def _overrides(self, ctx: _Ctx, item: Node, appendable, replaceable
                   ) -> tuple[set[str], set[str]]:
        node = get(item, "override")
        app: set[str] = set()
        rep: set[str] = set()
        if node is None:
            return app, rep
        if not isinstance(node, MappingNode):
            raise ctx.error("Value of override must be a mapping", node)
        for k, v in node.value:
            key = k.value if isinstance(k, ScalarNode) else ""
            op = v.value if isinstance(v, ScalarNode) else ""
            if op == "append":
                if key not in appendable:
                    raise ctx.error(f"Key '{key}' cannot be appended to, use 'replace' instead", k)
                app.add(key)
            elif op == "replace":
                if key not in replaceable:
                    raise ctx.error(f"Key '{key}' cannot be replaced", k)
                rep.add(key)
            else:
                allowed = ("append " if key in appendable else "") + (
                    "replace " if key in replaceable else "")
                raise ctx.error(f"Invalid override operation for key '{key}': '{op}'. "
                                f"Allowed values are: {allowed}", v)
        return app, rep

    # -- items ------------------------------------------------------------------------
    def read_item(self, y: YamlFile, item: Node) -> None:
        if not isinstance(item, MappingNode):
            raise _Ctx(y, "rules content item").error(
                "Unexpected element type. Each element should be a yaml associative array.", item)
        if get(item, "required_engine_version") is not None:
            self._engine_version(y, item)
        elif get(item, "required_plugin_versions") is not None:
            self._plugin_versions(y, item)
        elif get(item, "list") is not None:
            self._list(y, item)
        elif get(item, "macro") is not None:
            self._macro(y, item)
        elif get(item, "rule") is not None:
            self._rule(y, item)
        else:
            first = keys(item)[0][0] if keys(item) else ""
            self.sink.warning(d.UNKNOWN_ITEM, "Unknown top level item", y.loc(item),
                              item_type="rules content item",
                              hint=d.did_you_mean(first, ("list", "macro", "rule",
                                                          "required_engine_version",
                                                          "required_plugin_versions")))

    def _engine_version(self, y: YamlFile, item: Node) -> None:
        ctx = _Ctx(y, "required_engine_version")
        node = get(item, "required_engine_version")
        try:
            v = Version.implicit(self._val(ctx, item, "required_engine_version", "uint"))
        except LoadError:
            text = self._val(ctx, item, "required_engine_version")
            v = Version.parse(text)
            if v is None:
                raise ctx.error(f"Unable to parse engine version '{text}' as a semver string. "
                                f"Expected \"x.y.z\" semver format.", node) from None
        self.col.define_engine_version(v, y.loc(node))
        self._warn_unknown_keys(ctx, item, ("required_engine_version",))

    def _plugin_versions(self, y: YamlFile, item: Node) -> None:
        node = get(item, "required_plugin_versions")
        ctx = _Ctx(y, "required_plugin_versions")
        if not isinstance(node, SequenceNode):
            raise ctx.error("Value of required_plugin_versions must be a sequence", node)
        for plugin in node.value:
            if not isinstance(plugin, MappingNode):
                raise ctx.error("Plugin version must be a mapping", plugin)
            pctx = _Ctx(y, "required_plugin_versions entry")
            name = self._val(pctx, plugin, "name")
            pctx.name = name
            alts = [(name, self._val(pctx, plugin, "version"))]
            alternatives = get(plugin, "alternatives")
            if alternatives is not None:
                if not isinstance(alternatives, SequenceNode):
                    raise pctx.error("Value of plugin version alternatives must be a sequence",
                                     alternatives)
                for req in alternatives.value:
                    actx = _Ctx(y, "required_plugin_versions alternative")
                    if not isinstance(req, MappingNode):
                        raise actx.error("Plugin version alternative must be a mapping", req)
                    aname = self._val(actx, req, "name")
                    actx.name = aname
                    alts.append((aname, self._val(actx, req, "version")))
            self.col.define_plugin_versions(alts, y.loc(plugin))
        self._warn_unknown_keys(ctx, item, ("required_plugin_versions",))

    def _list(self, y: YamlFile, item: Node) -> None:
        name = self._val(_Ctx(y, "list"), item, "list")
        ctx = _Ctx(y, "list", name)
        if not _BARESTR.fullmatch(name):
            self.sink.warning(d.INVALID_LIST_NAME, "List has an invalid name. List names should "
                              "match a regular expression: ([^()\"'[:space:]=,]+)",
                              y.loc(get(item, "list")), item_type="list", item_name=name)
        items = self._seq(ctx, item, "items", optional=False)
        info = ListInfo(name, items, y.loc(item))
        append = self._val(ctx, item, "append", "bool", optional=True) or False
        if append:
            self.sink.warning(d.DEPRECATED_ITEM, d.WARNING_APPEND, y.loc(get(item, "append")),
                              item_type="list", item_name=name)
        app, rep = self._overrides(ctx, item, ("items",), ("items",))
        if append and (app or rep):
            raise ctx.error(d.ERROR_OVERRIDE_APPEND, item)
        if append or "items" in app:
            self.col.append_list(info)
        else:
            self.col.define_list(info)
        self._warn_unknown_keys(ctx, item, LIST_KEYS)

    def _macro(self, y: YamlFile, item: Node) -> None:
        name = self._val(_Ctx(y, "macro"), item, "macro")
        ctx = _Ctx(y, "macro", name)
        if not _IDENTIFIER.fullmatch(name):
            self.sink.warning(d.INVALID_MACRO_NAME, "Macro has an invalid name. Macro names "
                              "should match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)",
                              y.loc(get(item, "macro")), item_type="macro", item_name=name)
        cond = self._val(ctx, item, "condition", "pt")
        info = MacroInfo(name, cond, y.loc(item))
        append = self._val(ctx, item, "append", "bool", optional=True) or False
        if append:
            self.sink.warning(d.DEPRECATED_ITEM, d.WARNING_APPEND, y.loc(get(item, "append")),
                              item_type="macro", item_name=name)
        app, rep = self._overrides(ctx, item, ("condition",), ("condition",))
        if append and (app or rep):
            raise ctx.error(d.ERROR_OVERRIDE_APPEND, item)
        if append or "condition" in app:
            self.col.append_macro(info)
        else:
            self.col.define_macro(info)
        self._warn_unknown_keys(ctx, item, MACRO_KEYS)
