"""The one place regression tests call fcap's rule engine.

Loads rules (:func:`fcap.analyze.rules.load_rules`), compiles them
(:func:`fcap.analyze.compile.compile_ruleset`), opens the capture
(:func:`fcap.capture.reader.open_capture`), replays it
(:func:`fcap.analyze.engine.replay`) and returns Falco JSON alert objects —
the same objects ``fcap replay -o json`` prints. Compiled rulesets are cached
per rules set (files and mtimes) for the life of the process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcap.errors import FcapError


class EngineUnavailableError(FcapError):
    """fcap's rule engine cannot be imported (incomplete installation)."""

    exit_code = 2


_COMPILED: dict[tuple, Any] = {}


def load_compiled(rules: Sequence[Path]) -> Any:
    """Load and compile a rules set once (cached by path, mtime and size); raise with every
    loader/compiler error at once (:class:`fcap.analyze.compile.load.RulesError`)."""
    rules = [Path(p).resolve() for p in rules]
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in rules)
    if key in _COMPILED:
        return _COMPILED[key]
    try:
        from fcap.analyze.compile.load import load_and_compile
    except ImportError as err:
        raise EngineUnavailableError(f"fcap's rule engine is not available: {err}") from err
    _, compiled = load_and_compile(rules)
    _COMPILED[key] = compiled
    return compiled


def alert_json(alert: Any) -> dict[str, Any]:
    """The Falco JSON object of one engine alert (ISO 8601 time prefix: TZ-independent)."""
    from fcap.analyze.output.format import alert_json as _alert_json

    return json.loads(_alert_json(alert, iso8601=True))


def replay_json(
    captures: Sequence[Path], rules: Sequence[Path], rule_matching: str = "first"
) -> list[dict[str, Any]]:
    """Falco JSON alerts of ``captures`` replayed through ``rules``."""
    compiled = load_compiled(rules)
    try:
        from fcap.analyze.engine import replay
    except ImportError as err:
        raise EngineUnavailableError(f"fcap's rule engine is not available: {err}") from err
    return [
        alert_json(a)
        for a in replay(
            [str(Path(p).resolve()) for p in captures], compiled, rule_matching=rule_matching
        )
    ]
