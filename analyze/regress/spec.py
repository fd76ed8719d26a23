"""The declarative regression format: ``*.fcap.yaml`` files.

A file describes one test, or several under ``tests:`` (top-level keys are
then defaults for every test)::

    name: shell in a container reads /etc/shadow   # optional, default: file name
    capture: capture.parquet       # relative to this file; or {sha256: <hex>}
    sha256: 3f1c...                # optional: the capture must have this digest
    rules: [bundled]               # default; 'bundled' = fcap's rules/, else paths
    rule_matching: first           # Falco's default; or 'all'
    expected: expected.jsonl       # Falco JSON alerts, one per line (exact match)
    alerts:                        # and/or inline expectations
      - rule: Terminal shell in container
        count: 1                   # omitted = at least once; 0 = must not fire
        priority: Notice
        fields: {proc.name: sh}    # output fields the alert must carry
    # alerts: none                 # the capture must raise no alert at all
    allow_unexpected: false        # default: an alert nobody expected fails
    only_rules: [Write below etc]  # optional: ignore alerts of other rules

Paths are relative to the file that names them. See docs/regression.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fcap.analyze.regress.alerts import Expectation, ExpectationError

SUFFIX = ".fcap.yaml"
BUNDLED = "bundled"
_KEYS = {
    "name",
    "capture",
    "sha256",
    "rules",
    "rule_matching",
    "expected",
    "alerts",
    "allow_unexpected",
    "only_rules",
    "tests",
    "description",
}


class SpecError(ExpectationError):
    """A ``*.fcap.yaml`` file is malformed (the message names file and line)."""


class _LineLoader(yaml.SafeLoader):
    """A safe YAML loader that remembers the line of every mapping."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True)
class CaptureRef:
    """Where a test's capture is: a path, a sha256 digest, or both."""

    path: Path | None = None
    sha256: str | None = None

    def describe(self) -> str:
        """Path, plus a short digest when one is pinned."""
        digest = f" (sha256 {self.sha256[:12]}…)" if self.sha256 else ""
        return f"{self.path}{digest}" if self.path else f"sha256:{self.sha256}"


@dataclass(frozen=True)
class Spec:
    """One regression test: a capture, rules, and the alerts they must raise."""

    name: str
    file: Path
    line: int
    capture: CaptureRef
    rules: tuple[Path, ...]  # empty tuple = fcap's bundled rules
    rule_matching: str = "first"
    expectations: tuple[Expectation, ...] = ()
    expected_file: Path | None = None
    no_alerts: bool = False
    allow_unexpected: bool = False
    only_rules: tuple[str, ...] = ()
    index: int | None = None  # position under ``tests:``, None for a one-test file

    @property
    def origin(self) -> str:
        """``file:line`` of the test's declaration."""
        return f"{self.file}:{self.line}"


def _strip(obj: Any) -> Any:
    """Remove the loader's ``__line__`` markers (recursively)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "__line__"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _as_list(value: Any, what: str, origin: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    if isinstance(value, list):
        return value
    raise SpecError(f"{origin}: {what} must be a list")


def _rules(value: Any, base: Path, origin: str) -> tuple[Path, ...]:
    out: list[Path] = []
    bundled = False
    for item in _as_list(value, "rules", origin) or [BUNDLED]:
        if not isinstance(item, str):
            raise SpecError(f"{origin}: rules entries are paths or 'bundled' (got {item!r})")
        if item == BUNDLED:
            bundled = True
            from fcap.analyze.regress.runner import bundled_rule_files

            out.extend(bundled_rule_files())
            continue
        path = (base / item).resolve() if not Path(item).is_absolute() else Path(item)
        if not path.exists():
            raise SpecError(f"{origin}: rules file {item} not found (looked at {path})")
        out.append(path)
    if bundled and not out:
        raise SpecError(f"{origin}: fcap's bundled rules are missing from this installation")
    return tuple(out)


def _capture(raw: Mapping[str, Any], base: Path, origin: str) -> CaptureRef:
    cap = raw.get("capture")
    digest = raw.get("sha256")
    if isinstance(cap, Mapping):
        digest = cap.get("sha256", digest)
        cap = cap.get("path")
    if cap is None and digest is None:
        raise SpecError(
            f"{origin}: no capture", hint="add 'capture: <file.parquet>' or 'capture: {sha256: ...}'"
        )
    if digest is not None:
        digest = str(digest).lower().removeprefix("sha256:")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise SpecError(f"{origin}: sha256 must be 64 hex digits (got {digest!r})")
    path = None
    if cap is not None:
        path = Path(str(cap))
        path = path if path.is_absolute() else (base / path)
    return CaptureRef(path=path, sha256=digest)


def _one(raw: Mapping[str, Any], file: Path, line: int, index: int | None) -> Spec:
    origin = f"{file}:{line}"
    unknown = {k for k in raw if k not in _KEYS and k != "__line__"}
    if unknown:
        raise SpecError(
            f"{origin}: unknown key(s) {', '.join(sorted(unknown))}",
            hint=f"allowed: {', '.join(sorted(_KEYS - {'tests'}))}",
        )
    base = file.parent
    name = raw.get("name") or (
        file.name.removesuffix(SUFFIX) + (f"[{index}]" if index is not None else "")
    )
    matching = str(raw.get("rule_matching") or "first")
    if matching not in ("first", "all"):
        raise SpecError(f"{origin}: rule_matching must be 'first' or 'all' (got {matching!r})")
    alerts = raw.get("alerts")
    no_alerts = isinstance(alerts, str) and alerts.strip().lower() in ("none", "no alerts")
    exps: list[Expectation] = []
    if not no_alerts:
        for item in _as_list(alerts, "alerts", origin):
            where = f"{file}:{item.get('__line__', line)}" if isinstance(item, dict) else origin
            exps.append(Expectation.parse(_strip(item), where))
    expected_file = None
    if raw.get("expected"):
        expected_file = base / str(raw["expected"])
    if no_alerts and expected_file:
        raise SpecError(f"{origin}: 'alerts: none' and 'expected:' contradict each other")
    if not no_alerts and not exps and expected_file is None:
        raise SpecError(
            f"{origin}: the test expects nothing",
            hint="add 'alerts:' (a list, or 'none' for a negative case) or 'expected: expected.jsonl'",
        )
    only = tuple(str(r) for r in _as_list(raw.get("only_rules"), "only_rules", origin))
    return Spec(
        name=str(name),
        file=file,
        line=line,
        capture=_capture(raw, base, origin),
        rules=_rules(raw.get("rules"), base, origin),
        rule_matching=matching,
        expectations=tuple(exps),
        expected_file=expected_file,
        no_alerts=no_alerts,
        allow_unexpected=bool(raw.get("allow_unexpected", False)),
        only_rules=only,
        index=index,
    )


def load_specs(file: str | Path, *, text: str | None = None) -> list[Spec]:
    """Parse a ``*.fcap.yaml`` file into its tests (raises :class:`SpecError`)."""
    file = Path(file)
    try:
        source = text if text is not None else file.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"cannot read {file}: {err.strerror}") from err
    try:
        doc = yaml.load(source, Loader=_LineLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        raise SpecError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(doc, dict):
        raise SpecError(f"{file}: expected a mapping at the top level")
    tests = doc.get("tests")
    if tests is None:
        return [_one(doc, file, doc.get("__line__", 1), None)]
    if not isinstance(tests, list) or not tests:
        raise SpecError(f"{file}: 'tests' must be a non-empty list")
    defaults = {k: v for k, v in doc.items() if k not in ("tests", "name", "__line__")}
    specs = []
    for i, test in enumerate(tests):
        if not isinstance(test, dict):
            raise SpecError(f"{file}: tests[{i}] must be a mapping")
        specs.append(_one({**defaults, **test}, file, test.get("__line__", 1), i))
    return specs


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """Every ``*.fcap.yaml`` file named or found below the given paths, sorted."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found.extend(sorted(x for x in p.rglob(f"*{SUFFIX}") if x.is_file()))
        elif p.is_file():
            found.append(p)
        else:
            raise SpecError(f"{p}: no such file or directory")
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]
