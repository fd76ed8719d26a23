"""pytest plugin: run ``*.fcap.yaml`` regression tests and check alerts from Python.

Registered through the ``pytest11`` entry point (``fcap = "fcap.pytest_plugin"``),
so any repository with fcap installed gets:

* collection of ``*.fcap.yaml`` files: one pytest item per test they declare;
  a failure prints fcap's diff (``- missing`` / ``+ unexpected`` alerts);
* the fixture ``fcap_capture``: a factory ``fcap_capture(path_or_sha256)``
  returning a :class:`CaptureHandle` (paths relative to the test file; a
  64-hex digest is looked up next to the test, in ``--fcap-capture-dir`` and
  ``$FCAP_CAPTURE_PATH``);
* the fixture ``assert_alerts``: ``assert_alerts(capture, expected, rules=None,
  rule_matching="first")`` replays and fails with the same diff.

Options: ``--fcap-capture-dir DIR`` (repeatable) and the ini key
``fcap_capture_dirs``. See docs/regression.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fcap.analyze.regress.spec import SUFFIX

_RUNNER_KEY = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fcap", "fcap regression tests")
    group.addoption(
        "--fcap-capture-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="directory searched for captures named by sha256 (repeatable)",
    )
    parser.addini("fcap_capture_dirs", "directories searched for captures named by sha256", "paths")


def _runner(config: pytest.Config) -> Any:
    """One shared runner per session (caches digests and replays)."""
    if _RUNNER_KEY not in config.stash:
        from fcap.analyze.regress.runner import Runner

        dirs = [Path(d) for d in config.getoption("--fcap-capture-dir") or []]
        dirs += [Path(d) for d in config.getini("fcap_capture_dirs") or []]
        config.stash[_RUNNER_KEY] = Runner(capture_dirs=tuple(dirs))
    return config.stash[_RUNNER_KEY]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(SUFFIX):
        return FcapFile.from_parent(parent, path=file_path)
    return None


class FcapFailure(Exception):
    """A regression test failed; carries the rendered report."""


class FcapFile(pytest.File):
    """A ``*.fcap.yaml`` file: one item per declared test."""

    def collect(self):  # type: ignore[override]
        from fcap.analyze.regress.spec import load_specs

        for spec in load_specs(self.path):
            yield FcapItem.from_parent(self, name=spec.name, spec=spec)


class FcapItem(pytest.Item):
    """One regression test of a ``*.fcap.yaml`` file."""

    def __init__(self, *, spec: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        from fcap.analyze.regress.diff import render_result

        result = _runner(self.config).run_spec(self.spec)
        if not result.ok:
            raise FcapFailure(render_result(result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, FcapFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.spec.line - 1, f"fcap: {self.spec.name}"


@dataclass(frozen=True)
class CaptureHandle:
    """A capture resolved for a test: its files, and replay helpers."""

    paths: tuple[Path, ...]
    runner: Any

    def alerts(
        self, rules: Sequence[str | Path] | None = None, rule_matching: str = "first"
    ) -> list[dict[str, Any]]:
        """Falco JSON alerts of this capture under ``rules`` (default: fcap's bundled rules)."""
        from fcap.analyze.regress.runner import bundled_rule_files

        files = [Path(r) for r in rules] if rules else bundled_rule_files()
        return self.runner.alerts(list(self.paths), files, rule_matching)


@pytest.fixture
def fcap_capture(request: pytest.FixtureRequest) -> Callable[[str | Path], CaptureHandle]:
    """Factory: ``fcap_capture("x.parquet")`` or ``fcap_capture("<sha256>")`` -> CaptureHandle."""
    from fcap.analyze.regress.spec import CaptureRef

    runner = _runner(request.config)
    base = Path(request.path).parent

    def resolve(ref: str | Path) -> CaptureHandle:
        text = str(ref)
        if len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower()):
            cref = CaptureRef(sha256=text.lower())
        else:
            p = Path(text)
            cref = CaptureRef(path=p if p.is_absolute() else base / p)
        return CaptureHandle(tuple(runner.resolve(cref, base)), runner)

    return resolve


@pytest.fixture
def assert_alerts() -> Callable[..., list[dict[str, Any]]]:
    """``assert_alerts(capture, expected, rules=None, rule_matching="first", allow_unexpected=False)``.

    ``expected`` is ``"none"`` or a list of rule names / ``{rule, count,
    priority, fields}`` mappings. Returns the alerts; fails with a diff.
    """
    from fcap.analyze.regress.diff import render_comparison
    from fcap.analyze.regress.runner import check_alerts

    def check(
        capture: CaptureHandle,
        expected: Sequence[Any] | str,
        rules: Sequence[str | Path] | None = None,
        rule_matching: str = "first",
        allow_unexpected: bool = False,
    ) -> list[dict[str, Any]]:
        alerts = capture.alerts(rules, rule_matching)
        cmp = check_alerts(alerts, expected, allow_unexpected=allow_unexpected)
        if not cmp.ok:
            pytest.fail(render_comparison(cmp, title=f"alerts of {capture.paths[0]}"), pytrace=False)
        return alerts

    return check
