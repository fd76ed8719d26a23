"""Output formats and templates against Falco's exact expected output."""

from __future__ import annotations

import json

import pytest
from compile_fakes import CATALOG
from fcap.analyze.compile.template import compile_template
from fcap.analyze.output.format import (
    apply_width,
    json_object,
    priority_name,
    text_line,
    time_local,
)

MSG = "An open was seen (command=cat /dev/null)"


@pytest.mark.shared
def test_text_and_json_match_falco_0_35_1(shared_dir) -> None:
    out = shared_dir / "anchors/scap/falco-0.35.1/output_files"
    texts = (out / "single_rule_with_cat_write.txt").read_text().splitlines()
    objs = [json.loads(x) for x in (out / "single_rule_with_cat_write.json").read_text().splitlines()]
    assert len(texts) == len(objs) == 8
    for line, expected in zip(texts, objs, strict=True):
        ts = expected["output_fields"]["evt.time.iso8601"]
        assert text_line(ts, 4, MSG, iso8601=True) == line
        ours = json_object(
            ts=ts, rule="open_from_cat", priority=4, source="syscall",
            tags=("testing", "process", "filesystem"), hostname="test-falco-hostname",
            message=MSG, output_fields={"proc.cmdline": "cat /dev/null"}, iso8601=True,
        )
        assert json.loads(ours) == expected


def test_json_keys_sorted_and_compact() -> None:
    text = json_object(ts=1, rule="r", priority=6, source="syscall", tags=("b", "a"),
                       hostname="h", message="m", output_fields={"z": 1, "a": None})
    assert text.startswith('{"hostname":"h","output":"')
    assert '"output_fields":{"a":null,"evt.time":1,"z":1},"priority":"Informational"' in text
    assert text.endswith('"tags":["a","b"],"time":"1970-01-01T00:00:00.000000001Z"}')


def test_text_line_is_json_escaped_like_falco() -> None:
    line = text_line(0, 3, 'cmd="a\\b"\tx\x01 é', iso8601=True)
    assert line == '1970-01-01T00:00:00.000000000+0000: Error cmd=\\"a\\\\b\\"\\tx\\u0001 é'


def test_local_time_prefix(monkeypatch) -> None:
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert time_local(1470327477881781397) == "16:17:57.881781397"
        assert text_line(1470327477881781397, 0, "x") == "16:17:57.881781397: Emergency x"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    ("prio", "name"), [(0, "Emergency"), (4, "Warning"), (6, "Informational"), (7, "Debug")]
)
def test_priority_names(prio: int, name: str) -> None:
    assert priority_name(prio) == name


def test_width_pads_or_truncates() -> None:
    assert apply_width("cat", 6) == "cat   "
    assert apply_width("catalogue", 3) == "cat"
    assert apply_width("cat", 0) == "cat"


def _tokens(text: str) -> list[tuple[str, object]]:
    tpl, issues = compile_template(text, CATALOG)
    assert tpl is not None, issues
    return [(t.name, t.width) if t.name else ("", t.text) for t in tpl.tokens]


def test_template_longest_known_prefix() -> None:
    assert _tokens("a %proc.name) b") == [("", "a "), ("proc.name", 0), ("", ") b")]
    assert _tokens("%fd.name.") == [("fd.name", 0), ("", ".")]
    assert _tokens("x=%proc.name.foo") == [("", "x="), ("proc.name", 0), ("", ".foo")]
    assert _tokens("%12proc.name|") == [("proc.name", 12), ("", "|")]
    assert _tokens("%proc.aname[2]") == [("proc.aname[2]", 0)]


def test_template_transformer_token_reports_inner_field_in_json() -> None:
    tpl, _ = compile_template("%tolower(proc.name)", CATALOG)
    assert tpl is not None
    assert [t.name for t in tpl.tokens] == ["tolower(proc.name)"]
    assert [name for name, _ in tpl.json_fields] == ["proc.name"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a %", "formatting cannot end with a %"),
        ("a %12", "formatting cannot end with a number"),
        ("a %nope.field b", "invalid formatting token 'nope.field'"),
        ("a %%proc.name", "invalid formatting token"),
    ],
)
def test_template_errors(text: str, message: str) -> None:
    tpl, issues = compile_template(text, CATALOG)
    assert tpl is None
    assert message in issues[0].message
