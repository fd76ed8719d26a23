"""Regression tests of rules on shared captures.

A regression test is a capture, a rules set and the alerts they must (or must
not) raise, declared in a ``*.fcap.yaml`` file (:mod:`.spec`). The runner
(:mod:`.runner`) replays the capture with fcap's engine and compares
(:mod:`.alerts`); :mod:`.diff` renders failures and rule-change differences.
``fcap test``, ``fcap diff`` and the pytest plugin (:mod:`fcap.pytest_plugin`)
are thin layers over this package. Format: docs/regression.md.
"""

from __future__ import annotations

from fcap.analyze.regress.alerts import Alert, Comparison, Expectation, compare
from fcap.analyze.regress.spec import Spec, SpecError, discover, load_specs

__all__ = [
    "Alert",
    "Comparison",
    "Expectation",
    "Spec",
    "SpecError",
    "compare",
    "discover",
    "load_specs",
]
