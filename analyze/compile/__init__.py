"""Rule compiler: Falco conditions and outputs -> DuckDB SQL over the ``events`` relation.

Passes: type check (:mod:`.typecheck`), SQL generation (:mod:`.sqlgen`),
event-type sets (:mod:`.evttypes`), output templates (:mod:`.template`);
:mod:`.ruleset` drives them for a whole RuleSet or a single condition.
"""

from __future__ import annotations

from .diagnostics import CompileIssue, ConditionCompileError, Diagnostic
from .ruleset import (
    SUGGESTED_OUTPUT_FIELDS,
    CompiledRule,
    CompiledRuleset,
    compile_condition,
    compile_expr,
    compile_ruleset,
)

__all__ = [
    "SUGGESTED_OUTPUT_FIELDS",
    "CompileIssue",
    "CompiledRule",
    "CompiledRuleset",
    "ConditionCompileError",
    "Diagnostic",
    "compile_condition",
    "compile_expr",
    "compile_ruleset",
]
