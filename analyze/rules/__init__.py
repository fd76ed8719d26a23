"""Falco rules files: reading, merging (append/override), lists, macros and
exceptions, with file positions for every diagnostic.

Public API::

    load_rules(paths, texts=None) -> RuleSet
    Priority, Rule, RuleSet, Diagnostic, Severity, ENGINE_VERSION
"""

from __future__ import annotations

from .loader import load_rules
from .model import Diagnostic, ListDef, MacroDef, Priority, Rule, RuleSet, Severity
from .version import ENGINE_VERSION, PROVIDED_PLUGINS

__all__ = [
    "ENGINE_VERSION",
    "PROVIDED_PLUGINS",
    "Diagnostic",
    "ListDef",
    "MacroDef",
    "Priority",
    "Rule",
    "RuleSet",
    "Severity",
    "load_rules",
]
