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
