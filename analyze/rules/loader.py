"""``load_rules``: read rules files and directories into a :class:`RuleSet`.

Files are read in the order given (a directory contributes its ``.yaml`` and
``.yml`` files in alphabetical order) into one shared collector, then
everything is compiled once — the result is the same as Falco's, which
recompiles everything collected after each file. ``texts`` supplies file
contents by name (tests, or rules from a string): a name present in
``texts`` is not read from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import diagnostics as d
from .collector import Collector
from .compiler import Compiler
from .fieldcheck import field_ok
from .model import RuleSet
from .positions import SourceMaps
from .reader import Reader
from .version import PROVIDED_PLUGINS, Version
from .yamlsrc import YamlFile


def expand_paths(paths: Sequence[str | Path], texts: dict[str, str] | None = None
                 ) -> list[str]:
    """Files in load order: directories expand to their .yaml/.yml files, sorted."""
    out: list[str] = []
    for p in paths:
        s = str(p)
        if texts is not None and s in texts:
            out.append(s)
            continue
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.iterdir(), key=lambda f: f.name)
                       if f.is_file() and f.suffix in (".yaml", ".yml"))
        else:
            out.append(s)
    return out


def load_rules(paths: Sequence[str | Path] = (), *, texts: dict[str, str] | None = None
               ) -> RuleSet:
    """Load Falco rules files (and/or ``texts``) the way Falco >= 0.44 does.

    Never raises for problems in the rules: every error and warning is in
    ``RuleSet.diagnostics`` with its file position. With ``paths`` empty,
    every entry of ``texts`` is loaded in insertion order.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths and texts:
        paths = list(texts)
    sink = d.Sink()
    maps = SourceMaps()
    col = Collector(sink)
    reader = Reader(col, sink, field_ok)
    files = expand_paths(paths, texts)
    for name in files:
        if texts is not None and name in texts:
            text = texts[name]
        else:
            try:
                text = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                sink.error(d.FILE_READ, f"Could not read rules file {name}: "
                           f"{getattr(e, 'strerror', None) or e}")
                continue
        reader.read(YamlFile(maps, name, text))
    _check_plugins(col, sink)
    rules, macros, lists = Compiler(col, sink, maps).compile()
    return RuleSet(
        rules=tuple(rules), macros=tuple(macros), lists=tuple(lists),
        diagnostics=tuple(sink.items),
        required_engine_version=str(col.required_engine_version)
        if col.required_engine_version else None,
        required_plugin_versions=tuple(tuple(a) for a in col.required_plugin_versions),
        files=tuple(files), maps=maps)


def _check_plugins(col: Collector, sink: d.Sink) -> None:
    """``required_plugin_versions``: fcap stands in for the container plugin;
    any other plugin is missing (a warning: its rules use another source or
    fields fcap reports as unknown)."""
    for alternatives, loc in zip(col.required_plugin_versions, col.required_plugin_locs,
                                 strict=True):
        ok = False
        for name, version in alternatives:
            have = PROVIDED_PLUGINS.get(name)
            req = Version.parse(version)
            if have and req and Version.parse(have).compatible_with(req):
                ok = True
                break
        if not ok:
            names = " or ".join(f"{n} >= {v}" for n, v in alternatives)
            sink.warning(d.UNKNOWN_PLUGIN, f"Plugin requirement not satisfied: {names}; rules "
                         f"relying on it are skipped or report unknown fields", loc,
                         item_type="required_plugin_versions", item_name=alternatives[0][0],
                         hint="fcap provides the fields of the container plugin only")
