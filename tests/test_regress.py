"""The regression format, matching and reports (fcap.analyze.regress).

These tests feed hand-written Falco JSON alerts through the comparison logic
(a replay function stands in for the engine, so they test the matching, not
detection); tests/test_samples.py runs the same machinery on real captures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fcap.analyze.regress.alerts import Alert, Expectation, compare, expectations_from_alerts
from fcap.analyze.regress.diff import alert_change, render_change, render_result
from fcap.analyze.regress.runner import Runner, bundled_rule_files, check_alerts
from fcap.analyze.regress.spec import SpecError, discover, load_specs


def _alert(rule: str, t: str = "2026-01-01T00:00:00.000000001Z", **fields: str) -> dict:
    return {
        "rule": rule,
        "priority": "Warning",
        "time": t,
        "output": f"{t}: Warning {rule}",
        "output_fields": {k.replace("_", "."): v for k, v in fields.items()},
        "source": "syscall",
        "tags": [],
    }


SHADOW = _alert("Read sensitive file untrusted", fd_name="/etc/shadow", proc_name="cat")
PASSWD = _alert("Write below etc", "2026-01-01T00:00:01Z", fd_name="/etc/passwd", proc_name="sh")


def _spec_dir(tmp_path: Path, body: str, capture: bytes = b"PAR1fake") -> Path:
    (tmp_path / "cap.parquet").write_bytes(capture)
    f = tmp_path / "t.fcap.yaml"
    f.write_text(body)
    return f


def _runner(alerts: list[dict]) -> tuple[Runner, list]:
    calls: list = []

    def replay(captures, rules, matching):
        calls.append((tuple(captures), tuple(rules), matching))
        return alerts

    return Runner(replay=replay), calls


def test_expectation_matching_counts_and_fields() -> None:
    alerts = [Alert.from_json(SHADOW), Alert.from_json(SHADOW), Alert.from_json(PASSWD)]
    ok = compare(
        [
            Expectation("Read sensitive file untrusted", count=2, fields=(("fd.name", "/etc/shadow"),)),
            Expectation("Write below etc"),
        ],
        alerts,
    )
    assert ok.ok and ok.matched == 3
    bad = compare([Expectation("Read sensitive file untrusted", count=1)], alerts)
    assert not bad.ok
    (exp, got), = bad.missing
    assert exp.count == 1 and len(got) == 2
    assert [a.rule for a in bad.unexpected] == ["Write below etc"]


def test_specific_expectation_claims_first() -> None:
    alerts = [Alert.from_json(SHADOW)]
    # the general one is declared first but must not steal the alert
    cmp = compare(
        [
            Expectation("Read sensitive file untrusted", count=0),
            Expectation("Read sensitive file untrusted", count=1, fields=(("proc.name", "cat"),)),
        ],
        alerts,
    )
    assert cmp.ok


def test_expectations_from_alerts_merge_duplicates() -> None:
    alerts = [Alert.from_json(SHADOW)] * 3 + [Alert.from_json(PASSWD)]
    exps = expectations_from_alerts(alerts)
    assert sorted((e.rule, e.count) for e in exps) == [
        ("Read sensitive file untrusted", 3),
        ("Write below etc", 1),
    ]
    assert compare(exps, alerts).ok
    assert not compare(exps, alerts[1:]).ok


def test_spec_inline_alerts_pass_and_fail(tmp_path: Path) -> None:
    f = _spec_dir(
        tmp_path,
        "capture: cap.parquet\nrules: [r.yaml]\nalerts:\n"
        "  - rule: Read sensitive file untrusted\n    fields: {fd.name: /etc/shadow}\n"
        "  - {rule: Write below etc, count: 1}\n",
    )
    (tmp_path / "r.yaml").write_text("[]\n")
    (spec,) = load_specs(f)
    assert spec.rules == ((tmp_path / "r.yaml").resolve(),)
    runner, calls = _runner([SHADOW, PASSWD])
    assert runner.run_spec(spec).ok
    assert calls[0][2] == "first"

    runner, _ = _runner([PASSWD])
    result = runner.run_spec(spec)
    assert not result.ok
    text = render_result(result)
    assert "FAIL" in text
    assert "- missing: Read sensitive file untrusted fd.name=/etc/shadow" in text
    assert "expected at least 1, got 0" in text
    assert "t.fcap.yaml:4" in text  # where the expectation is declared


def test_spec_no_alerts_reports_unexpected(tmp_path: Path) -> None:
    f = _spec_dir(tmp_path, "capture: cap.parquet\nalerts: none\n")
    (spec,) = load_specs(f)
    assert spec.no_alerts and spec.rules == tuple(bundled_rule_files())
    runner, _ = _runner([])
    assert runner.run_spec(spec).ok
    runner, _ = _runner([PASSWD])
    text = render_result(runner.run_spec(spec))
    assert "+ unexpected: Write below etc (Warning)" in text
    assert "fd.name=/etc/passwd" in text


def test_spec_expected_jsonl(tmp_path: Path) -> None:
    f = _spec_dir(tmp_path, "capture: cap.parquet\nexpected: expected.jsonl\n")
    (tmp_path / "expected.jsonl").write_text(
        "\n".join(json.dumps(a) for a in (SHADOW, PASSWD)) + "\n"
    )
    (spec,) = load_specs(f)
    runner, _ = _runner([PASSWD, SHADOW])
    assert runner.run_spec(spec).ok
    changed = dict(SHADOW, output_fields={"fd.name": "/etc/gshadow", "proc.name": "cat"})
    runner, _ = _runner([PASSWD, changed])
    text = render_result(runner.run_spec(spec))
    assert "- missing: Read sensitive file untrusted (Warning)" in text
    assert "+ unexpected: Read sensitive file untrusted" in text and "/etc/gshadow" in text


def test_capture_by_sha256_and_pinned_digest(tmp_path: Path) -> None:
    import hashlib

    data = b"PAR1 some capture bytes"
    digest = hashlib.sha256(data).hexdigest()
    f = _spec_dir(tmp_path, f"capture: {{sha256: {digest}}}\nalerts: none\n", data)
    (spec,) = load_specs(f)
    runner, calls = _runner([])
    assert runner.run_spec(spec).ok
    assert calls[0][0] == (tmp_path / "cap.parquet",)

    f.write_text(f"capture: cap.parquet\nsha256: '{'0' * 64}'\nalerts: none\n")
    (spec,) = load_specs(f)
    result = runner.run_spec(spec)
    assert not result.ok and "the test pins" in (result.error or "")


def test_multi_test_file_and_errors(tmp_path: Path) -> None:
    f = _spec_dir(
        tmp_path,
        "capture: cap.parquet\ntests:\n  - name: a\n    alerts: none\n"
        "  - name: b\n    rule_matching: all\n    alerts: [Write below etc]\n",
    )
    a, b = load_specs(f)
    assert (a.name, b.name, b.rule_matching) == ("a", "b", "all")
    assert b.line == 5
    with pytest.raises(SpecError, match="unknown key"):
        load_specs(f, text="capture: cap.parquet\nalert: none\n")
    with pytest.raises(SpecError, match="expects nothing"):
        load_specs(f, text="capture: cap.parquet\n")
    with pytest.raises(SpecError, match="rule_matching"):
        load_specs(f, text="capture: cap.parquet\nrule_matching: some\nalerts: none\n")
    with pytest.raises(SpecError, match=r"t\.fcap\.yaml:\d+:\d+: invalid YAML"):
        load_specs(f, text="capture: cap.parquet\nalerts: [\n")
    assert discover([tmp_path]) == [f]


def test_check_alerts_for_fixture() -> None:
    assert check_alerts([SHADOW], ["Read sensitive file untrusted"]).ok
    assert not check_alerts([SHADOW], "none").ok
    assert check_alerts([SHADOW], [], allow_unexpected=True).ok


def test_alert_change_added_removed() -> None:
    old = [Alert.from_json(a) for a in (SHADOW, PASSWD)]
    new = [Alert.from_json(a) for a in (SHADOW, SHADOW)]
    change = alert_change(Path("c.parquet"), old, new)
    assert [a.rule for a in change.added] == ["Read sensitive file untrusted"]
    assert [a.rule for a in change.removed] == ["Write below etc"]
    assert change.unchanged == 1 and not change.changed
    text = render_change(change)
    assert "+1 added, -1 removed, ~0 changed, 1 unchanged" in text
    assert "  - Write below etc: 1 alert(s)" in text
    # same rule on the same event with another output: changed, not removed + added
    reworded = Alert.from_json(dict(PASSWD, output_fields={"fd.name": "/etc/passwd"}))
    change = alert_change(Path("c.parquet"), old, [Alert.from_json(SHADOW), reworded])
    assert (len(change.added), len(change.removed), change.unchanged) == (0, 0, 1)
    assert [(a.rule, b.fields) for a, b in change.changed] == [
        ("Write below etc", {"fd.name": "/etc/passwd"})
    ]
    assert "~ Write below etc: 1 alert(s) with a different priority or output" in render_change(change)


# --- Falco 0.35.1's regression corpus (docs/scap-corpus.md) ----------------------

#: Loader tests where fcap reports a different code on purpose, with the reason.
KNOWN_LOADER_DIFFERENCES = {
    # Falco 0.35.1 named the skip-if-unknown-filter warning LOAD_UNKNOWN_FIELD;
    # current Falco (and fcap) call it LOAD_UNKNOWN_FILTER.
    "validate_skip_unknown_noevt": {"LOAD_UNKNOWN_FILTER"},
}


def _corpus_table(doc: Path) -> dict[str, int]:
    """The class counts stated in docs/scap-corpus.md's table (`| class | n |`)."""
    import re

    counts = {}
    for m in re.finditer(r"^\| `([a-z-]+)` \| (\d+) \|", doc.read_text(), re.M):
        counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.mark.shared
def test_scap_corpus_counts_match_the_doc(shared_dir: Path) -> None:
    from fcap.analyze.regress.scapcorpus import CLASSES, load_entries, summarize

    entries = load_entries(shared_dir / "anchors/scap/falco-0.35.1/expected_results.json")
    s = summarize(entries)
    assert s.total == len(entries) == sum(s.by_class.values())
    doc = Path(__file__).resolve().parents[1] / "docs/scap-corpus.md"
    assert _corpus_table(doc) == {c: s.by_class[c] for c in CLASSES}


@pytest.mark.shared
def test_scap_corpus_loader_expectations(shared_dir: Path) -> None:
    """Every loader-only test of Falco's corpus gives fcap's loader the same verdict."""
    from fcap.analyze.regress.scapcorpus import check_loader_entry, classify, load_entries

    root = shared_dir / "anchors/scap/falco-0.35.1"
    checks = [check_loader_entry(e, root) for e in load_entries(root / "expected_results.json")
              if classify(e) == "loader"]  # fmt: skip
    assert len(checks) == 41
    wrong = []
    for c in checks:
        if c.name in KNOWN_LOADER_DIFFERENCES:
            assert KNOWN_LOADER_DIFFERENCES[c.name] <= (c.errors | c.warnings), c
            continue
        if not c.ok:
            wrong.append(f"{c.name}: Falco {sorted(c.expected)}, fcap errors {sorted(c.errors)}")
    assert not wrong, "\n".join(wrong)


def test_rerecord_view_drops_volatile_fields() -> None:
    from fcap.analyze.regress.samples import stable_view

    conn = _alert("Disallowed SSH Connection", fd_name="127.0.0.1:54666->127.0.0.1:22",
                  fd_lport="22", proc_pid="7374", proc_name="busybox")  # fmt: skip
    view = stable_view(Alert.from_json(conn)).fields
    assert view == {"fd.lport": "22", "proc.name": "busybox"}
    assert stable_view(Alert.from_json(SHADOW)).fields == {"fd.name": "/etc/shadow",
                                                          "proc.name": "cat"}  # fmt: skip
