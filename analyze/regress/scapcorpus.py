"""Falco 0.35.1's regression corpus: which of its expectations fcap can check.

``expected_results.json`` (in ``shared/anchors/scap/falco-0.35.1/``) flattens
Falco's three legacy test suites into 153 entries. Each entry falls in one
class (see docs/scap-corpus.md):

* ``loader``: a ``validate_*`` test — the expected outcome is what the rules
  loader reports (errors, warnings, or ok) for a rules file; fcap checks it
  today with its own loader, no capture needed;
* ``falco-config``: Falco exits with an error for a command-line or
  ``falco.yaml`` combination (syscall-drop actions, ``-D`` with ``-t``)
  before reading events: Falco daemon behaviour, outside fcap's scope;
* ``scap-detect``: detections (``detect``, ``detect_level``,
  ``detect_counts``) on a ``.scap`` capture that is here — needs a .scap
  reader (a later issue);
* ``trace-missing``: detections on a capture not available here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLASSES = ("loader", "falco-config", "scap-detect", "trace-missing")


def classify(entry: Mapping[str, Any]) -> str:
    """The class of one ``expected_results.json`` entry."""
    if any(k.startswith("validate_") for k in entry):
        return "loader"
    if entry.get("exit_status", 0) not in (0, None):
        return "falco-config"
    if not entry.get("trace_available"):
        return "trace-missing"
    return "scap-detect"


def detect_kind(entry: Mapping[str, Any]) -> str:
    """For detection tests: ``counts`` (exact per-rule counts), ``level`` or ``bool``."""
    if "detect_counts" in entry:
        return "counts"
    if "detect_level" in entry:
        return "level"
    return "bool"


@dataclass(frozen=True)
class CorpusSummary:
    """Counts of the corpus by class, suite, capture and detection kind."""

    total: int
    by_class: Counter[str]
    by_suite_class: Counter[tuple[str, str]]
    detect_by_trace: Counter[str]
    detect_by_kind: Counter[str]
    loader_by_outcome: Counter[str]


def load_entries(path: Path) -> list[dict[str, Any]]:
    """The ``tests`` list of ``expected_results.json``."""
    return list(json.loads(path.read_text(encoding="utf-8"))["tests"])


def summarize(entries: list[Mapping[str, Any]]) -> CorpusSummary:
    """Count the entries by class and, within classes, by what they assert."""
    by_class: Counter[str] = Counter()
    by_suite: Counter[tuple[str, str]] = Counter()
    traces: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    loader: Counter[str] = Counter()
    for e in entries:
        c = classify(e)
        by_class[c] += 1
        by_suite[(str(e.get("suite")), c)] += 1
        if c == "scap-detect":
            traces[Path(str(e.get("trace_file"))).name] += 1
            kinds[detect_kind(e)] += 1
        elif c == "loader":
            if e.get("validate_errors"):
                loader["errors"] += 1
            elif e.get("validate_warnings"):
                loader["warnings"] += 1
            else:
                loader["ok"] += 1
    return CorpusSummary(len(entries), by_class, by_suite, traces, kinds, loader)


def _is_error(diag: Any) -> bool:
    flag = getattr(diag, "is_error", None)
    if flag is not None:
        return bool(flag)
    return str(getattr(diag, "severity", "")).lower().endswith("error")


@dataclass(frozen=True)
class LoaderCheck:
    """fcap's loader + compiler verdict on one ``loader`` entry."""

    name: str
    ok: bool
    expected: frozenset[str]  # Falco's codes (errors, or warnings when no errors expected)
    errors: frozenset[str]  # codes fcap reported as errors
    warnings: frozenset[str]


def check_loader_entry(entry: Mapping[str, Any], root: Path) -> LoaderCheck:
    """Load (and, when it loads, compile) the entry's rules files; compare the codes.

    Errors: every code Falco reports must be among fcap's error codes.
    Warnings only: fcap must report no error and every expected warning code.
    """
    from fcap.analyze.compile import compile_ruleset
    from fcap.analyze.rules import load_rules

    files = entry["validate_rules_file"]
    files = [files] if isinstance(files, str) else list(files)
    ruleset = load_rules([str(root / f) for f in files])
    diags = list(ruleset.diagnostics)
    if not ruleset.errors:
        diags += list(compile_ruleset(ruleset).diagnostics)
    errors = frozenset(d.code for d in diags if _is_error(d))
    warnings = frozenset(d.code for d in diags if not _is_error(d))
    if entry.get("validate_errors"):
        want = frozenset(x["code"] for x in entry["validate_errors"])
        ok = want <= errors
    elif entry.get("validate_warnings"):
        want = frozenset(x["code"] for x in entry["validate_warnings"])
        ok = not errors and want <= warnings
    else:
        want = frozenset()
        ok = not errors
    return LoaderCheck(str(entry["name"]), ok, want, errors, warnings)
