"""Event-type sets, ported from libs ``test/filter_ppm_codes.ut.cpp`` (as name sets)."""

from __future__ import annotations

import pytest
from fcap.analyze.compile.evttypes import UNIVERSE, event_types
from fcap.analyze.condition.parser import parse_condition


def types(cond: str) -> frozenset[str]:
    return event_types(parse_condition(cond))


OPENAT = frozenset({"openat"})
OPENAT_CLOSE = frozenset({"openat", "close"})


@pytest.mark.parametrize(
    "cond",
    [
        "evt.type=openat",
        "evt.type = openat",
        "not evt.type != openat",
        "not not evt.type = openat",
        "not not not not evt.type = openat",
        "evt.type in (openat)",
        "not (not evt.type=openat)",
        "evt.type=openat and proc.name=nginx",
        "evt.type=openat and not proc.name=nginx",
        "evt.type=openat and (proc.name=nginx)",
        "evt.type=openat and not (evt.type=close and proc.name=nginx)",
    ],
)
def test_openat_only(cond: str) -> None:
    assert types(cond) == OPENAT


@pytest.mark.parametrize(
    "cond",
    [
        "evt.type!=openat",
        "not not not evt.type = openat",
        "not evt.type=openat",
        "evt.type=close or evt.type!=openat",
    ],
)
def test_not_openat(cond: str) -> None:
    assert types(cond) == UNIVERSE - OPENAT


@pytest.mark.parametrize(
    "cond",
    [
        "evt.type in (openat, close)",
        "evt.type=openat or evt.type=close",
        "evt.type=openat or (evt.type=close and proc.name=nginx)",
        "evt.type=close or (evt.type=openat and proc.name=nginx)",
    ],
)
def test_openat_close(cond: str) -> None:
    assert types(cond) == OPENAT_CLOSE


@pytest.mark.parametrize(
    "cond",
    [
        "not evt.type in (openat, close)",
        "not not not evt.type in (openat, close)",
        "evt.type!=openat and evt.type!=close",
    ],
)
def test_not_openat_close(cond: str) -> None:
    assert types(cond) == UNIVERSE - OPENAT_CLOSE


@pytest.mark.parametrize(
    "cond",
    [
        "evt.type!=openat or evt.type!=close",
        "proc.name=nginx",
        "evt.type=openat or proc.name=nginx",
        "(evt.type=openat) or proc.name=nginx",
        "evt.type=close or not (evt.type=openat and proc.name=nginx)",
        "evt.type exists",
        "not proc.name=cat",
        "evt.num > 0",
    ],
)
def test_all_events(cond: str) -> None:
    assert types(cond) == UNIVERSE


@pytest.mark.parametrize(
    "cond",
    [
        "evt.type=close and evt.type=openat",
        "evt.type=openat and (evt.type=close and proc.name=nginx)",
        "(evt.type=mmap and not evt.type=mmap)",
        "evt.type in ()",
        "not evt.type exists",
        "evt.num = 0",
    ],
)
def test_no_events(cond: str) -> None:
    assert types(cond) == frozenset()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "evt.type in (connect, execve, accept, mmap, container) and not "
            "(proc.name=cat and evt.type=mmap)",
            "evt.type in (accept, connect, container, execve, mmap)",
        ),
        ("not (proc.name=cat or evt.type=mmap)", "not proc.name=cat and not evt.type=mmap"),
        ("not (evt.type=execve or evt.type=mmap)", "not evt.type=execve and not evt.type=mmap"),
        ("not (proc.name=cat and evt.type=mmap)", "not proc.name=cat or not evt.type=mmap"),
        ("not evt.type=mmap", "evt.type!=mmap"),
        ("evt.type=mmap and (evt.type exists)", "evt.type=mmap"),
        ("evt.type=mmap or (evt.type in ())", "evt.type=mmap"),
    ],
)
def test_equivalences(a: str, b: str) -> None:
    assert types(a) == types(b)


# -- fcap's extension event types --------------------------------------------------------


@pytest.mark.parametrize("name", ["shell_line", "shell_line_withheld"])
def test_fcap_extension_event_types(name: str) -> None:
    from fcap.analyze.compile import compile_condition

    assert name in UNIVERSE
    assert types(f"evt.type = {name}") == frozenset({name})
    assert f"'{name}'" in compile_condition(f"evt.type = {name}")


def test_shell_rules_compile_without_skip_if_unknown_filter() -> None:
    """The bundled shell rules compile on their own merits, not skipped as unknown."""
    from pathlib import Path

    from fcap.analyze.compile import compile_ruleset
    from fcap.analyze.rules import load_rules

    path = Path(__file__).resolve().parents[1] / "rules" / "fcap_shell_rules.yaml"
    text = "\n".join(line for line in path.read_text().splitlines()
                     if "skip-if-unknown-filter" not in line)
    ruleset = load_rules([str(path)], texts={str(path): text})
    assert not ruleset.errors
    compiled = compile_ruleset(ruleset)
    assert not compiled.errors, [d.message for d in compiled.errors]
    assert not compiled.skipped
    names = {r.name for r in ruleset.rules}
    assert names and {r.name for r in compiled.rules} == names
    assert all(r.event_types and r.event_types <= {"shell_line", "shell_line_withheld"}
               for r in compiled.rules)
