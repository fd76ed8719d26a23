"""The five upstream rules files in ``../shared/anchors/falco-rules/`` load
unchanged with no errors, with the rule/macro/list counts the anchors' README
lists (measured there with an independent script)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fcap.analyze.rules import load_rules

FILES = (
    "falco_rules.yaml",
    "falco-incubating_rules.yaml",
    "falco-sandbox_rules.yaml",
    "falco_rules-falco-rules-1.0.1.yaml",
    "falco_rules-falco-0.28.1.yaml",
)


def _readme_counts(d: Path) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for m in re.finditer(r"^\| (\S+\.yaml) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
                         (d / "README.md").read_text(), re.M):
        out[m.group(1)] = tuple(int(m.group(i)) for i in range(2, 6))
    return out


@pytest.mark.shared
@pytest.mark.parametrize("name", FILES)
def test_upstream_file_loads_without_errors(shared_dir: Path, name: str) -> None:
    d = shared_dir / "anchors" / "falco-rules"
    rs = load_rules([d / name])
    assert not rs.errors, "\n".join(str(e) for e in rs.errors)
    rules, macros, lists, enabled = _readme_counts(d)[name]
    assert (len(rs.rules), len(rs.macros), len(rs.lists)) == (rules, macros, lists)
    assert sum(r.enabled for r in rs.rules) == enabled
    for r in rs.rules:
        assert r.location is not None and r.location.file == str(d / name)


@pytest.mark.shared
def test_stable_and_incubating_together(shared_dir: Path) -> None:
    d = shared_dir / "anchors" / "falco-rules"
    rs = load_rules([d / "falco_rules.yaml", d / "falco-incubating_rules.yaml"])
    assert not rs.errors
    # incubating redefines some of stable's macros/lists: positions are kept
    names = [r.name for r in rs.rules]
    assert len(names) == len(set(names)) == 25 + 31
    assert rs.required_engine_version == "0.57.0"


@pytest.mark.shared
def test_every_field_span_maps_to_its_text_in_the_file(shared_dir: Path) -> None:
    """Every field of every expanded rule condition points at exactly that
    field in the file (folded scalars, macros from other places, lists)."""
    from fcap.analyze.condition.ast import And, Compare, Exists, Field, Not, Or

    def fields(e):
        if isinstance(e, And | Or):
            for c in e.children:
                yield from fields(c)
        elif isinstance(e, Not):
            yield from fields(e.child)
        elif isinstance(e, Compare | Exists) and isinstance(e.lhs, Field):
            yield e.lhs

    n = 0
    for name in FILES:
        rs = load_rules([shared_dir / "anchors" / "falco-rules" / name])
        for r in rs.rules:
            for f in fields(r.condition):
                loc = r.locate(f.span)
                text = rs.maps.texts[f.span.origin].text[f.span.start : f.span.end]
                assert loc.line_text[loc.col - 1 : loc.col - 1 + loc.length] == text, (r.name, loc)
                n += 1
    assert n > 4000
