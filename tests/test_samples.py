"""The bundled samples: complete, small, pinned, and passing `fcap test samples/`.

Also the acceptance check of regression testing: a deliberately broken rule
makes `fcap test` fail with a diff that names the rule and the missing alert,
and `fcap diff` shows the alert the change removes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fcap.analyze.regress.runner import bundled_rule_files, bundled_samples_dir, sha256_file
from fcap.analyze.regress.samples import DEFAULT_SAMPLE, default_capture, list_samples
from fcap.analyze.regress.spec import load_specs

SAMPLES = bundled_samples_dir()
NAMES = sorted(p.name for p in SAMPLES.iterdir() if (p / "scenario.py").is_file())
MAX_SAMPLE_BYTES = 2 * 1024 * 1024
MAX_TOTAL_BYTES = 6 * 1024 * 1024


def _fcap(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fcap", *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_there_are_positive_and_negative_samples() -> None:
    assert len(NAMES) >= 8
    negatives = [n for n in NAMES for f in (SAMPLES / n).glob("*.fcap.yaml")
                 for s in load_specs(f) if s.no_alerts]  # fmt: skip
    assert negatives == ["benign-admin"]


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_complete_small_and_pinned(name: str) -> None:
    d = SAMPLES / name
    for f in ("scenario.py", "README.md", "capture.parquet"):
        assert (d / f).is_file(), f"{name}: {f} missing"
    (spec_file,) = d.glob("*.fcap.yaml")
    (spec,) = load_specs(spec_file)
    cap = d / "capture.parquet"
    assert cap.stat().st_size < MAX_SAMPLE_BYTES
    assert spec.capture.path == cap
    assert spec.capture.sha256 == sha256_file(cap), "capture changed without re-pinning"
    assert spec.rules == tuple(bundled_rule_files())
    if spec.no_alerts:
        assert not (d / "expected.jsonl").exists()
        return
    lines = (d / "expected.jsonl").read_text().splitlines()
    assert lines, "a positive sample with no expected alert"
    for line in lines:
        alert = json.loads(line)
        assert {"rule", "priority", "time", "output", "output_fields"} <= set(alert)
    # the README tells what alerts: every expected rule is named in it
    readme = " ".join((d / "README.md").read_text().split())
    for rule in {json.loads(line)["rule"] for line in lines}:
        assert rule in readme, f"{name}: README does not mention {rule!r}"


def test_samples_are_small_in_total() -> None:
    total = sum(s.capture_bytes for s in list_samples())
    assert 0 < total < MAX_TOTAL_BYTES


def test_default_capture_is_the_container_shell_sample() -> None:
    assert DEFAULT_SAMPLE == "container-shell"
    assert default_capture() == SAMPLES / "container-shell" / "capture.parquet"
    assert default_capture().is_file()


@pytest.mark.slow
def test_fcap_test_samples_passes() -> None:
    r = _fcap("test", str(SAMPLES), "-v")
    assert r.returncode == 0, r.stdout + r.stderr
    tested = sorted(n for n in NAMES if any((SAMPLES / n).glob("*.fcap.yaml")))
    assert len(tested) >= 9
    assert f"ok: {len(tested)} passed, 0 failed" in r.stdout
    for name in tested:
        assert f"PASS {name}" in r.stdout


def _broken_rules(tmp_path: Path) -> list[Path]:
    """The bundled rules with 'Write below etc' broken (it looks below /etcx/)."""
    out = []
    for f in bundled_rule_files():
        text = f.read_text()
        if f.name == "fcap_rules.yaml":
            broken = text.replace("fcap_open_write and fd.name startswith /etc/",
                                  "fcap_open_write and fd.name startswith /etcx/")  # fmt: skip
            assert broken != text
            text = broken
        (tmp_path / f.name).write_text(text)
        out.append(tmp_path / f.name)
    return out


@pytest.mark.slow
def test_broken_rule_fails_with_a_diff_naming_rule_and_alert(tmp_path: Path) -> None:
    rules = _broken_rules(tmp_path)
    d = SAMPLES / DEFAULT_SAMPLE
    spec = tmp_path / "broken.fcap.yaml"
    spec.write_text(
        f"capture: {d / 'capture.parquet'}\n"
        f"rules: [{', '.join(str(r) for r in rules)}]\n"
        f"expected: {d / 'expected.jsonl'}\n"
    )
    r = _fcap("test", str(spec))
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "FAIL broken" in out
    missing = [line for line in out.splitlines() if line.strip().startswith("- missing:")]
    assert len(missing) == 1, out
    assert "Write below etc (Error)" in missing[0]
    assert "fd.name=/etc/passwd" in missing[0]
    assert "expected 1, got 0" in missing[0]
    assert "+ unexpected" not in out
    assert re.search(r"FAILED: 0 passed, 1 failed", out)

    # the same change seen by fcap diff: one alert removed, nothing added
    bundled = [a for f in bundled_rule_files() for a in ("--rules", str(f))]
    new = [a for f in rules for a in ("--rules-new", str(f))]
    r = _fcap("diff", *bundled, *new, str(d / "capture.parquet"), "--exit-code")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "+0 added, -1 removed, ~0 changed" in r.stdout
    assert "  - Write below etc: 1 alert(s)" in r.stdout


@pytest.mark.live
@pytest.mark.container
@pytest.mark.slow
def test_rerecording_the_bundled_sample_gives_the_same_alerts() -> None:
    """Run the scenario again under fcap record; compare by rule and stable fields."""
    r = _fcap("samples", "record", DEFAULT_SAMPLE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "alerts as expected" in r.stdout


#: Falco's own stable rules (falco_rules.yaml, unchanged) on fcap's recordings.
UPSTREAM_ON_SAMPLES = {
    "container-shell": {"Terminal shell in container", "Read sensitive file untrusted"},
    "reverse-shell": {"Netcat Remote Code Execution in Container",
                      "Redirect STDOUT/STDIN to Network Connection in Container"},
    "fileless-exec": {"Execution from /dev/shm"},
    "benign-admin": set(),
}  # fmt: skip


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(UPSTREAM_ON_SAMPLES))
def test_falco_stable_rules_fire_on_the_samples(shared_dir: Path, name: str) -> None:
    """The same demonstrations detected by Falco's rules file instead of ours."""
    from fcap.analyze.regress.engine_bridge import replay_json

    rules = [shared_dir / "anchors/falco-rules/falco_rules.yaml"]
    fired = {a["rule"] for a in replay_json([SAMPLES / name / "capture.parquet"], rules)}
    assert UPSTREAM_ON_SAMPLES[name] <= fired
    if not UPSTREAM_ON_SAMPLES[name]:
        assert fired == set()
