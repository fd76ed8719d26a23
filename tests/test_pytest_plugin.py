"""The pytest plugin (fcap.pytest_plugin), run in a throwaway pytest with pytester.

Each test writes a small synthetic capture (fcap.capture.synth) and a rules
file into pytester's directory, so the plugin drives the real engine end to
end: *.fcap.yaml collection, failure reports, and the fixtures.
"""

from __future__ import annotations

import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import duckdb  # noqa: F401  (see _preloaded below)
import pytest
import yaml
from fcap.analyze import engine as _engine  # noqa: F401
from fcap.analyze.regress import engine_bridge as _bridge  # noqa: F401
from fcap.capture.synth import make_capture

pytest_plugins = ["pytester"]

RULES = """
- rule: Shadow read
  desc: test rule
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: shadow read (proc=%proc.name file=%fd.name)
  priority: WARNING
- rule: Passwd read
  desc: test rule
  condition: evt.type in (open, openat) and fd.name = /etc/passwd
  output: passwd read (proc=%proc.name file=%fd.name)
  priority: NOTICE
"""


def _plugin_args() -> list[str]:
    """``-p fcap.pytest_plugin`` unless the pytest11 entry point already loads it."""
    names = {ep.value for ep in entry_points(group="pytest11")}
    return [] if "fcap.pytest_plugin" in names else ["-p", "fcap.pytest_plugin"]


def _capture(path: Path) -> Path:
    ev = dict(pid=200, ppid=100, comm="cat", fd=3, res=3, a2=0)
    return make_capture(
        path,
        [
            {"syscall": "execve", "pid": 200, "comm": "cat", "exe": "/bin/cat",
             "argv": ["cat", "/etc/shadow"]},
            {"syscall": "openat", "path": "/etc/shadow", **ev},
            {"syscall": "openat", "path": "/etc/shadow", **ev},
            {"syscall": "openat", "path": "/etc/hostname", **ev},
        ],
        processes=[{"pid": 100, "ppid": 1, "comm": "bash", "exe": "bash",
                    "exepath": "/bin/bash", "argv": ["bash"]}],
    )  # fmt: skip


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    _capture(pytester.path / "cap.parquet")
    # yaml, duckdb and the engine are imported by this module, before
    # pytester's in-process runs: those restore sys.modules afterwards, and
    # C extensions (yaml's, duckdb) cannot be imported a second time.
    (pytester.path / "rules.yaml").write_text(yaml.safe_dump(yaml.safe_load(RULES)))
    return pytester


def test_collects_fcap_yaml_and_passes(project: pytest.Pytester) -> None:
    project.makefile(
        ".fcap.yaml",
        shadow=textwrap.dedent("""
            capture: cap.parquet
            rules: [rules.yaml]
            alerts:
              - rule: Shadow read
                count: 2
                fields: {fd.name: /etc/shadow, proc.name: cat}
        """),
    )
    result = project.runpytest(*_plugin_args(), "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*shadow.fcap.yaml::shadow PASSED*"])


def test_failure_names_rule_and_missing_alert(project: pytest.Pytester) -> None:
    project.makefile(
        ".fcap.yaml",
        shadow=textwrap.dedent("""
            capture: cap.parquet
            rules: [rules.yaml]
            tests:
              - name: wants-passwd
                alerts:
                  - rule: Shadow read
                    count: 2
                  - rule: Passwd read
              - name: negative
                alerts: none
        """),
    )
    result = project.runpytest(*_plugin_args())
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*FAIL wants-passwd*",
            "*- missing: Passwd read: expected at least 1, got 0*",
            "*FAIL negative*",
            "*+ unexpected: Shadow read (Warning)*fd.name=/etc/shadow*",
        ]
    )


def test_fixtures(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_fix=textwrap.dedent("""
            import hashlib
            from pathlib import Path

            def test_ok(fcap_capture, assert_alerts):
                cap = fcap_capture("cap.parquet")
                alerts = assert_alerts(cap, [{"rule": "Shadow read", "count": 2}],
                                       rules=["rules.yaml"])
                assert {a["rule"] for a in alerts} == {"Shadow read"}

            def test_by_digest(fcap_capture, assert_alerts):
                digest = hashlib.sha256(Path("cap.parquet").read_bytes()).hexdigest()
                cap = fcap_capture(digest)
                assert cap.paths[0].name == "cap.parquet"
                assert_alerts(cap, ["Shadow read"], rules=["rules.yaml"])

            def test_fails(fcap_capture, assert_alerts):
                assert_alerts(fcap_capture("cap.parquet"), "none", rules=["rules.yaml"])
        """),
    )
    result = project.runpytest(*_plugin_args(), "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_fails*", "*+ unexpected: Shadow read*"])
