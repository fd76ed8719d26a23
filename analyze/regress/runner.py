"""Run regression tests: resolve captures, replay them through rules, compare.

The replay itself is fcap's one engine (:mod:`fcap.analyze.engine`, the same
compiled SQL that ``fcap replay`` runs); this module only loads rules once per
distinct rules set, finds captures (by path or sha256), and compares the
alerts with the test's expectations.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcap.analyze.regress.alerts import (
    Alert,
    Comparison,
    Expectation,
    compare,
    expectations_from_alerts,
    read_jsonl,
)
from fcap.analyze.regress.spec import CaptureRef, Spec, SpecError, discover, load_specs

from fcap.errors import CaptureError, FcapError

#: Environment variable: extra directories (``:``-separated) searched for
#: captures named by sha256.
CAPTURE_PATH_ENV = "FCAP_CAPTURE_PATH"

#: A replay function: (capture files, rules files, rule_matching) -> Falco JSON alerts.
ReplayFn = Callable[[Sequence[Path], Sequence[Path], str], list[dict[str, Any]]]

_REPO = Path(__file__).resolve().parents[2]


def _package_dir(name: str, fallback: str) -> Path:
    """Directory of a data package (``fcap.rules``...) installed or in the source tree."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    return _REPO / fallback


def bundled_rules_dir() -> Path:
    """The directory of fcap's bundled default rules (``rules/`` in the source tree)."""
    return _package_dir("fcap.rules", "rules")


def bundled_rule_files() -> list[Path]:
    """The bundled rules files, in Falco's directory order (alphabetical)."""
    d = bundled_rules_dir()
    return sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def bundled_samples_dir() -> Path:
    """The directory of fcap's bundled sample captures (``samples/``)."""
    return _package_dir("fcap.samples", "samples")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def engine_replay(
    captures: Sequence[Path], rules: Sequence[Path], rule_matching: str
) -> list[dict[str, Any]]:
    """Replay ``captures`` through ``rules`` with fcap's engine; Falco JSON alerts."""
    from fcap.analyze.regress.engine_bridge import replay_json

    return replay_json(captures, rules, rule_matching)


@dataclass
class Runner:
    """Runs specs; caches digests and replays so shared captures are read once."""

    replay: ReplayFn = engine_replay
    capture_dirs: tuple[Path, ...] = ()
    _digests: dict[tuple[str, int, int], str] = field(default_factory=dict)
    _alerts: dict[tuple, list[dict[str, Any]]] = field(default_factory=dict)

    # --- captures ---------------------------------------------------------
    def digest(self, path: Path) -> str:
        """sha256 of a capture file, cached by (path, size, mtime)."""
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = sha256_file(path)
        return self._digests[key]

    def search_dirs(self, near: Path) -> list[Path]:
        """Where captures named by digest are looked for, in order."""
        env = [Path(p) for p in os.environ.get(CAPTURE_PATH_ENV, "").split(":") if p]
        return [near, *self.capture_dirs, *env, bundled_samples_dir()]

    def resolve(self, ref: CaptureRef, near: Path) -> list[Path]:
        """The capture files of a reference; checks the pinned digest."""
        if ref.path is not None:
            if not ref.path.exists():
                raise CaptureError(f"capture {ref.path} not found")
            if ref.sha256 and ref.path.is_file():
                got = self.digest(ref.path)
                if got != ref.sha256:
                    raise CaptureError(
                        f"capture {ref.path} has sha256 {got}, the test pins {ref.sha256}",
                        hint="the capture changed; re-pin it only if the change is intended",
                    )
            return [ref.path]
        for d in self.search_dirs(near):
            if not d.is_dir():
                continue
            for cand in sorted(d.rglob("*.parquet")):
                if cand.is_file() and self.digest(cand) == ref.sha256:
                    return [cand]
        raise CaptureError(
            f"no capture with sha256 {ref.sha256}",
            hint=f"put it next to the test or in a directory listed in ${CAPTURE_PATH_ENV}",
        )

    def resolve_path(self, path: Path) -> list[Path]:
        """A capture given on the command line: a file or a rotated directory."""
        if not path.exists():
            raise CaptureError(f"capture {path} not found")
        return [path]

    # --- replay ------------------------------------------------------------
    def alerts(
        self, captures: Sequence[Path], rules: Sequence[Path], rule_matching: str = "first"
    ) -> list[dict[str, Any]]:
        """Falco JSON alerts of ``captures`` under ``rules`` (cached per run)."""
        key = (
            tuple(str(p.resolve()) for p in captures),
            tuple((str(p.resolve()), p.stat().st_mtime_ns) for p in rules),
            rule_matching,
        )
        if key not in self._alerts:
            self._alerts[key] = list(self.replay(list(captures), list(rules), rule_matching))
        return self._alerts[key]

    # --- tests ---------------------------------------------------------------
    def run_spec(self, spec: Spec) -> Result:
        """Run one test; errors (missing capture, bad rules) become a failed result."""
        t0 = time.perf_counter()
        try:
            captures = self.resolve(spec.capture, spec.file.parent)
            rules = list(spec.rules)
            raw = self.alerts(captures, rules, spec.rule_matching)
            alerts = [Alert.from_json(a) for a in raw]
            if spec.only_rules:
                keep = set(spec.only_rules)
                alerts = [a for a in alerts if a.rule in keep]
            cmp = compare_spec(spec, alerts)
            return Result(spec, cmp, tuple(alerts), tuple(captures), None, time.perf_counter() - t0)
        except FcapError as err:
            return Result(spec, None, (), (), str(err), time.perf_counter() - t0)


def compare_spec(spec: Spec, alerts: Sequence[Alert]) -> Comparison:
    """Compare alerts with a spec's expectations.

    With ``expected:`` (a JSONL file) the file is the exact list of alerts and
    inline ``alerts:`` entries are extra assertions over the same alerts (each
    checked on its own); without it, the inline entries are the whole truth.
    """
    inline = list(spec.expectations)
    if spec.expected_file is None:
        return compare(inline, alerts, allow_unexpected=spec.allow_unexpected)
    exact = compare(
        expectations_from_alerts(read_jsonl(spec.expected_file)),
        alerts,
        allow_unexpected=spec.allow_unexpected,
    )
    extra = [compare([e], alerts, allow_unexpected=True) for e in inline]
    missing = exact.missing + tuple(m for c in extra for m in c.missing)
    return Comparison(
        missing=missing, unexpected=exact.unexpected, matched=exact.matched, total=exact.total
    )


@dataclass(frozen=True)
class Result:
    """The outcome of one regression test."""

    spec: Spec
    comparison: Comparison | None
    alerts: tuple[Alert, ...]
    captures: tuple[Path, ...]
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """Passed: no error, nothing missing, nothing unexpected."""
        return self.error is None and self.comparison is not None and self.comparison.ok


def load_all(paths: Sequence[str | Path]) -> tuple[list[Spec], list[str]]:
    """Load every spec below ``paths``; malformed files become error strings."""
    specs: list[Spec] = []
    errors: list[str] = []
    for f in discover(paths):
        try:
            specs.extend(load_specs(f))
        except SpecError as err:
            errors.append(str(err))
    return specs, errors


def run_paths(paths: Sequence[str | Path], runner: Runner | None = None) -> Iterable[Result]:
    """Run every test found below ``paths`` (generator, in file order)."""
    runner = runner or Runner()
    specs, errors = load_all(paths)
    if errors:
        raise SpecError("\n".join(errors))
    for spec in specs:
        yield runner.run_spec(spec)


def check_alerts(
    alerts: Sequence[Mapping[str, Any]] | Sequence[Alert],
    expected: Sequence[Any] | str,
    *,
    allow_unexpected: bool = False,
) -> Comparison:
    """Compare alerts with expectations given as Python values.

    ``expected`` is ``"none"`` (no alert at all) or a list of rule names /
    mappings as in the ``alerts:`` key of ``*.fcap.yaml``.
    """
    got = [a if isinstance(a, Alert) else Alert.from_json(a) for a in alerts]
    if isinstance(expected, str):
        if expected.strip().lower() not in ("none", "no alerts"):
            raise SpecError(f"expected must be a list or 'none' (got {expected!r})")
        exps: list[Expectation] = []
    else:
        exps = [Expectation.parse(e, "assert_alerts") for e in expected]
    return compare(exps, got, allow_unexpected=allow_unexpected)
