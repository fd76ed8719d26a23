"""Load rules files and compile them in one step, failing with every problem at once.

The one place the CLI (``fcap replay``, ``fcap rules``), the notebook API
(``fcap.open(..., rules=...)``) and the regression runner turn rules paths into
a :class:`~fcap.analyze.compile.CompiledRuleset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcap.errors import FcapError, UsageError

from .ruleset import CompiledRuleset, compile_ruleset


class RulesError(FcapError):
    """Rules that do not load or compile; the message lists every problem."""

    exit_code = 2


def load_and_compile(paths: Sequence[str | Path]) -> tuple[Any, CompiledRuleset]:
    """Load rules files/directories in order and compile them.

    Raises :class:`UsageError` for a path that does not exist and
    :class:`RulesError` listing every loader error, or else every compiler error.
    """
    from fcap.analyze.rules import load_rules

    for p in paths:
        if not Path(p).exists():
            raise UsageError(f"rules file or directory {p} not found")
    ruleset = load_rules([str(p) for p in paths])
    problems = [str(d) for d in ruleset.errors]
    compiled = compile_ruleset(ruleset) if not problems else None
    if compiled is not None:
        problems += [str(d) for d in compiled.errors]
    if problems:
        raise RulesError(f"{len(problems)} error(s) in the rules:\n" + "\n".join(problems))
    return ruleset, compiled
