"""The one place regression tests call fcap's rule engine.

Loads rules (:func:`fcap.analyze.rules.load_rules`), compiles them
(:func:`fcap.analyze.compile.compile_ruleset`), opens the capture
(:func:`fcap.capture.reader.open_capture`), replays it
(:func:`fcap.analyze.engine.replay`) and returns Falco JSON alert objects —
the same objects ``fcap replay -o json`` prints. Compiled rulesets are cached
per rules set (files and mtimes) for the life of the process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fcap.errors import FcapError


class EngineUnavailableError(FcapError):
    """fcap's rule engine cannot be imported (incomplete installation)."""

    exit_code = 2


_COMPILED: dict[tuple, Any] = {}


def load_compiled(rules: Sequence[Path]) -> Any:
    """Load and compile a rules set once; raise with every loader error at once."""
    key = tuple((str(p), p.stat().st_mtime_ns) for p in rules)
    if key in _COMPILED:
        return _COMPILED[key]
    try:
        from fcap.analyze.compile import compile_ruleset
        from fcap.analyze.rules import load_rules
    except ImportError as err:
        raise EngineUnavailableError(f"fcap's rule engine is not available: {err}") from err
    ruleset = load_rules([str(p) for p in rules])
    errors = list(getattr(ruleset, "errors", ()) or ())
    if errors:
        from fcap.analyze.regress.runner import RulesLoadError

        raise RulesLoadError(
            f"{len(errors)} error(s) loading rules:\n" + "\n".join(str(e) for e in errors)
        )
    compiled = compile_ruleset(ruleset)
    _COMPILED[key] = compiled
    return compiled


def _alert_json(alert: Any) -> dict[str, Any]:
    """A Falco JSON object from whatever the engine yields for one alert."""
    if isinstance(alert, Mapping):
        return dict(alert)
    for meth in ("to_json", "as_json", "json_obj", "to_dict"):
        fn = getattr(alert, meth, None)
        if callable(fn):
            out = fn()
            if isinstance(out, str):
                import json

                out = json.loads(out)
            return dict(out)
    if dataclasses.is_dataclass(alert):
        return dataclasses.asdict(alert)
    raise EngineUnavailableError(f"cannot read alert objects of type {type(alert).__name__}")


def replay_json(
    captures: Sequence[Path], rules: Sequence[Path], rule_matching: str = "first"
) -> list[dict[str, Any]]:
    """Falco JSON alerts of ``captures`` replayed through ``rules``."""
    compiled = load_compiled(rules)
    try:
        from fcap.analyze.engine import replay
        from fcap.capture.reader import open_capture
    except ImportError as err:
        raise EngineUnavailableError(f"fcap's rule engine is not available: {err}") from err
    capture = open_capture([str(p) for p in captures])
    return [_alert_json(a) for a in replay(capture, compiled, rule_matching=rule_matching)]
