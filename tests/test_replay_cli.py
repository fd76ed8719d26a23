"""``fcap replay`` and ``fcap rules`` end to end (subprocess, real rules files, synthetic captures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
- list: secrets
  items: [/etc/shadow, /etc/gshadow]
- macro: open_read
  condition: evt.type in (open, openat, openat2)
- rule: Read secret
  desc: a secret file was opened
  condition: open_read and fd.name in (secrets)
  output: Secret read (file=%fd.name type=%evt.type)
  priority: WARNING
  tags: [filesystem, test]
- rule: Any unlink
  desc: unlink
  condition: evt.type in (unlink, unlinkat)
  output: Unlink (path=%fd.name)
  priority: INFO
  tags: [filesystem]
"""

BAD = """\
- rule: Bad field
  desc: typo
  condition: evt.type = openat and proc.nmae = cat
  output: x
  priority: WARNING
"""


def fcap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fcap", *args],
        capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "TZ": "UTC", **(env or {})},
    )


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(GOOD)
    return p


def test_rules_validate_ok(rules_file: Path) -> None:
    r = fcap("rules", "validate", str(rules_file))
    assert r.returncode == 0, r.stderr
    assert "ok (2 rules compiled, 0 error(s), 0 warning(s))" in r.stdout


def test_rules_validate_reports_position_caret_and_hint(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    r = fcap("rules", "validate", str(p))
    assert r.returncode == 1
    assert f"{p}:3:36: error:" in r.stdout
    assert "proc.nmae" in r.stdout and "^^^^^^^^^" in r.stdout
    assert "did you mean proc.name?" in r.stdout


def test_rules_list_and_explain(rules_file: Path) -> None:
    r = fcap("rules", "list", str(rules_file))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "on   Warning       Read secret  [filesystem,test]",
        "on   Informational Any unlink  [filesystem]",
    ]
    r = fcap("rules", "explain", "Read secret", "-r", str(rules_file))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # the condition after list substitution, then fully expanded (macros), then the SQL
    i = lines.index("condition (lists substituted):")
    assert " ".join(lines[i + 1].split()) == "open_read and fd.name in ( /etc/shadow, /etc/gshadow )"
    assert lines[i + 2] == "condition (macros expanded):"
    assert "open_read" not in lines[i + 3]
    assert "evt.type in (open, openat, openat2)" in lines[i + 3]
    assert "/etc/shadow" in lines[i + 3]
    assert lines.index("sql:") > i + 3
    assert "event types: open openat openat2" in r.stdout
    assert "e.evt_type IN ('open', 'openat', 'openat2')" in r.stdout
    assert "'/etc/shadow', '/etc/gshadow'" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rule-matching", "some"], "--rule-matching must be 'first' or 'all'"),
        (["--time-format", "utc"], "--time-format must be 'local' or 'iso8601'"),
        (["-r", "/nonexistent/rules.yaml"], "rules file or directory /nonexistent/rules.yaml not found"),
    ],
)
def test_replay_usage_errors_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    r = fcap("replay", *args, str(tmp_path / "x.parquet"))
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_replay_bad_rules_exit_nonzero(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    r = fcap("replay", "-r", str(p), str(tmp_path / "x.parquet"))
    assert r.returncode == 2
    assert "proc.nmae" in r.stderr and "Traceback" not in r.stderr


# -- end to end on synthetic captures ---------------------------------------------------

T0 = 1_700_000_000_123_456_789


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    pytest.importorskip("fcap.analyze.enrich", reason="enriched events relation not built yet")
    from fcap.capture.synth import make_capture

    events = [
        {"ts": T0, "syscall": "openat", "pid": 10, "comm": "cat", "fd": 3, "res": 3,
         "path": "/etc/shadow"},
        {"ts": T0 + 1000, "syscall": "read", "pid": 10, "comm": "cat", "fd": 3, "res": 10},
        {"ts": T0 + 2000, "syscall": "openat", "pid": 10, "comm": "cat", "fd": 4, "res": 4,
         "path": "/etc/hosts"},
        {"ts": T0 + 3000, "syscall": "unlinkat", "pid": 11, "comm": "rm", "res": 0,
         "path": "/tmp/x"},
    ]
    return make_capture(tmp_path / "cap.parquet", events, meta={"hostname": "cap-host"})


def test_replay_text_alerts(capture: Path, rules_file: Path) -> None:
    r = fcap("replay", "-r", str(rules_file), str(capture))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("22:13:20.123456789: Warning Secret read (file=/etc/shadow "
                               "type=openat) container_id=host container_name=host")
    assert lines[1].startswith("22:13:20.123459789: Informational Unlink (path=")
    assert len(lines) == 2
    assert "Events processed: 4" in r.stderr
    assert "Read secret: 1" in r.stderr and "WARNING: 1" in r.stderr


def test_replay_json_selection_and_output_file(capture: Path, rules_file: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    r = fcap("replay", "-r", str(rules_file), "--json", "--time-format", "iso8601",
             "-p", "warning", "-o", str(out), str(capture))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    objs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [o["rule"] for o in objs] == ["Read secret"]
    o = objs[0]
    assert o["hostname"] == "cap-host"
    assert o["time"] == "2023-11-14T22:13:20.123456789Z"
    assert o["output"].startswith("2023-11-14T22:13:20.123456789+0000: Warning Secret read "
                                  "(file=/etc/shadow type=openat)")
    assert o["output_fields"]["fd.name"] == "/etc/shadow"
    assert o["output_fields"]["evt.time.iso8601"] == T0
    assert o["tags"] == ["filesystem", "test"] and o["source"] == "syscall"
    # -T drops the tagged rule, -D by wildcard the other one: no alerts, still exit 0
    r = fcap("replay", "-r", str(rules_file), "-T", "test", "-D", "Any *", str(capture))
    assert r.returncode == 0 and r.stdout == ""


SHARED_MACRO_WARNING = """\
- macro: old_dir
  condition: evt.dir = <
- rule: A
  desc: a
  condition: evt.type = openat and old_dir
  output: a %proc.name
  priority: INFO
- rule: B
  desc: b
  condition: evt.type = unlinkat and old_dir
  output: b %proc.name
  priority: INFO
"""


def test_identical_warnings_at_one_location_printed_once(tmp_path: Path, capture: Path) -> None:
    """A macro's warning, reported by Falco once per rule using it, is printed once
    naming both rules, by ``rules validate`` and by ``replay`` (which, like Falco >= 0.37,
    prints load warnings; ``-q`` silences them)."""
    p = tmp_path / "w.yaml"
    p.write_text(SHARED_MACRO_WARNING)
    r = fcap("rules", "validate", str(p))
    assert r.returncode == 0, r.stdout
    assert r.stdout.count("LOAD_DEPRECATED_ITEM") == 1
    assert f"{p}:2:14: warning: LOAD_DEPRECATED_ITEM" in r.stdout
    assert "(rules 'A', 'B')" in r.stdout
    assert "0 error(s), 1 warning(s)" in r.stdout
    r = fcap("replay", "-r", str(p), str(capture))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("LOAD_DEPRECATED_ITEM") == 1
    assert "(rules 'A', 'B')" in r.stderr
    r = fcap("replay", "-q", "-r", str(p), str(capture))
    assert r.returncode == 0 and "LOAD_DEPRECATED_ITEM" not in r.stderr
