"""Rule exceptions and the loader checks of Falco's legacy regression suite.

Reference: ``../shared/anchors/scap/falco-0.35.1/`` (Falco 0.35.1
``test/falco_tests.yaml`` + ``falco_tests_exceptions.yaml``, flattened into
``expected_results.json``, and their ``rules/`` files). Every test of those
suites that names rules files is checked here without its capture: the same
accept/reject as Falco, the same error code and item, and the same message
except where Falco >= 0.36 reworded it (table below).

The condition texts of the exception rules files were derived by hand from
``build_rule_exception_infos`` and ``resolve_list`` (falco
``rule_loader_compiler.cpp``), not produced by this code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fcap.analyze.rules import load_rules

BASE = "(evt.type=open and proc.name=cat)"
#: file -> the condition text Falco's compiler parses (hand-derived)
EXCEPTION_TEXTS = {
    "rule_exception_no_values.yaml": BASE,
    "rule_exception_values_list.yaml": BASE + ' and not (( proc.name = cat and  proc.cmdline in '
    '("cat /dev/zero", "cat /dev/null")))',
    "rule_exception_values_listref.yaml": BASE + " and not (( proc.name = cat and  proc.cmdline "
    'in ( "cat /dev/zero", "cat /dev/null" )))',
    "rule_exception_values_listref_noparens.yaml": BASE + " and not (( proc.name = cat and  "
    'proc.cmdline in ( "cat /dev/zero", "cat /dev/null" )))',
    "rule_exception_single_field.yaml": BASE + ' and not (proc.cmdline in ("cat /dev/zero", '
    '"cat /dev/null"))',
    "rule_exception_single_field_append.yaml": BASE + ' and not (proc.cmdline in ('
    '"cat /dev/zero", "cat /dev/null"))',
    "rule_exception_new_second_field_append.yaml": BASE + ' and not (proc.cmdline in ('
    '"cat /dev/zero")) and not (proc.cmdline in ("cat /dev/null"))',
    "rule_exception_quoted.yaml": BASE + " and not (( proc.name = not-cat and  proc.cmdline = "
    'not-cat) or ( proc.name = cat and  proc.cmdline = "cat /dev/null"))',
    "rule_exception_comp.yaml": BASE + " and not (( proc.name contains cat))",
    "rule_exception_append_comp.yaml": BASE + " and not (( proc.name contains cat))",
    "rule_exception_third_item.yaml": BASE + " and not (( proc.name = not-cat)) and not (( "
    'proc.name = not-cat and  proc.cmdline = "cat /dev/null")) and not (( proc.name = cat and  '
    'proc.cmdline = "cat /dev/null" and  proc.pname = bash))',
    "rule_exception_append_multiple.yaml": BASE + " and not (( proc.name = not-cat) or ( "
    "proc.name = cat))",
}

#: Falco 0.35.1 message -> the message of Falco >= 0.36 (which fcap follows)
REWORDED = {
    "Macro has 'append' key but no macro by that name already exists":
        "Macro uses 'append' or 'override.condition: append' but no macro by that name "
        "already exists",
    "List has 'append' key but no list by that name already exists":
        "List uses 'append' or 'override.items: append' but no list by that name already exists",
    "Rule has 'append' key but no rule by that name already exists":
        "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists",
    # 0.35.1 required an integer; Falco >= 0.37 also accepts a semver string
    "Can't decode YAML scalar value":
        "Unable to parse engine version 'not-a-number' as a semver string. Expected \"x.y.z\" "
        "semver format.",
    # integer versions are printed in semver form since Falco 0.37
    "Rules require engine version 9999999, but engine version is":
        "Rules require engine version 0.9999999.0, but engine version is",
}
#: messages that come from another parser (yaml-cpp, libs' hand-written
#: filter parser) or from the rule compiler: the code and item are checked
OTHER_TEXT = ("yaml-cpp:", "unexpected token after", "unknown event type",
              "invalid formatting token", "nonexistent field")


def _suite(shared_dir: Path) -> tuple[Path, list[dict]]:
    base = shared_dir / "anchors" / "scap" / "falco-0.35.1"
    tests = json.loads((base / "expected_results.json").read_text())["tests"]
    return base, [t for t in tests if t["suite"] != "falco_traces.yaml.in"
                  and (t.get("validate_rules_file") or t.get("rules_file"))]


def _load_with_compiler(paths):
    rs = load_rules(paths)
    errors = [(e.code, e.item_type, e.item_name, e.message) for e in rs.errors]
    try:
        from fcap.analyze.compile.ruleset import compile_ruleset
    except ImportError:  # pragma: no cover
        return rs, errors
    for e in compile_ruleset(rs).errors:
        errors.append((e.code, "rule", e.rule, e.message))
    return rs, errors


@pytest.mark.shared
def test_falco_suite_loader_expectations(shared_dir: Path) -> None:
    base, tests = _suite(shared_dir)
    checked = 0
    for t in tests:
        files = t.get("validate_rules_file") or t.get("rules_file")
        files = [files] if isinstance(files, str) else files
        _, errors = _load_with_compiler([base / f for f in files])
        if t.get("exit_status") == 1 and "validate_errors" in t:
            (want,) = t["validate_errors"]
            text = want.get("message") or want["message_contains"]
            text = REWORDED.get(text, text)
            found = [e for e in errors if e[:3] == (want["code"], want["item_type"],
                                                   want["item_name"])]
            assert found, (t["name"], want, errors)
            if not any(o in text for o in OTHER_TEXT):
                assert any(text in e[3] for e in found), (t["name"], text, found)
        elif t.get("exit_status", 0) == 0:
            assert not errors, (t["name"], errors)
        checked += 1
    assert checked >= 80


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(EXCEPTION_TEXTS))
def test_exception_condition_text(shared_dir: Path, name: str) -> None:
    path = shared_dir / "anchors" / "scap" / "falco-0.35.1" / "rules" / "exceptions" / name
    rs = load_rules([path])
    assert rs.ok, rs.errors
    assert rs.rule("Open From Cat").condition_text == EXCEPTION_TEXTS[name]


@pytest.mark.shared
def test_every_exception_file_accepts_or_rejects_like_falco(shared_dir: Path) -> None:
    base, tests = _suite(shared_dir)
    expected = {}
    for t in tests:
        files = t.get("validate_rules_file") or t.get("rules_file")
        files = [files] if isinstance(files, str) else files
        for f in files:
            if "exceptions/" in f:
                expected[Path(f).name] = t.get("exit_status") != 1
    on_disk = {p.name for p in (base / "rules" / "exceptions").glob("*.yaml")}
    assert on_disk == set(expected)
    for name, ok in sorted(expected.items()):
        _, errors = _load_with_compiler([base / "rules" / "exceptions" / name])
        assert (not errors) == ok, (name, errors)


# ---------------------------------------------------------------------------
# inline cases (no shared data)

RULE = """- rule: r
  desc: d
  condition: evt.type = open
  output: o
  priority: INFO
  exceptions:
"""


def load(text: str):
    return load_rules(["e.yaml"], texts={"e.yaml": text})


def test_modifier_comps_take_parenthesised_lists() -> None:
    rs = load(RULE + "    - name: e\n      fields: [proc.name, fd.name]\n"
              "      comps: [startswith oneof, in]\n"
              "      values:\n        - [my_prefixes, /tmp/x]\n"
              "- list: my_prefixes\n  items: [a, b]\n")
    assert rs.ok, rs.errors
    assert rs.rule("r").condition_text == (
        "(evt.type = open) and not (( proc.name startswith oneof ( a, b ) and  "
        "fd.name in (/tmp/x)))")
    (ex,) = rs.rule("r").exceptions
    assert (ex.name, ex.fields, ex.comps, ex.values) == (
        "e", ("proc.name", "fd.name"), ("startswith oneof", "in"), (("my_prefixes", "/tmp/x"),))
    assert rs.rule("r").exception_fields == {"proc.name", "fd.name"}


def test_scalar_fields_need_a_list_comp() -> None:
    rs = load(RULE + "    - name: e\n      fields: proc.name\n      comps: =\n"
              "      values: [a]\n")
    (err,) = rs.errors
    assert err.message.startswith("When fields is a single value, comps must be one of")
    assert (err.item_type, err.item_name) == ("exception", "e")
    assert err.location.line == 7


def test_exception_value_error_points_at_the_value() -> None:
    rs = load(RULE + "    - name: e\n      fields: [proc.name]\n      values:\n"
              "        - ['\"unterminated']\n")
    (err,) = rs.errors
    assert err.code == "LOAD_ERR_COMPILE_CONDITION"
    assert err.location.line == 10


def test_unknown_exception_field_is_an_error() -> None:
    rs = load(RULE + "    - name: e\n      fields: [proc.nam]\n      values: [[x]]\n")
    (err,) = rs.errors
    assert err.message == "'proc.nam' is not a supported filter field"


def test_duplicate_exception_name_is_a_warning() -> None:
    ex = "    - name: e\n      fields: [proc.name]\n      values: [[x]]\n"
    rs = load(RULE + ex + ex)
    assert rs.ok
    assert [w.code for w in rs.warnings] == ["LOAD_EXCEPTION_NAME_NOT_UNIQUE"]
