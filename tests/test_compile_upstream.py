"""Acceptance: the upstream Falco rules files load and every rule compiles.

``falco_rules.yaml`` (stable) and ``falco-incubating_rules.yaml`` must compile
completely; for every file the test prints the share of rules whose condition
uses only fields fcap provides (the others name the exact unsupported fields).
"""

from __future__ import annotations

import pytest
from fcap.analyze.compile import compile_ruleset
from fcap.analyze.engine import build_sql

FILES = [
    "falco_rules.yaml",
    "falco-incubating_rules.yaml",
    "falco-sandbox_rules.yaml",
    "falco_rules-falco-rules-1.0.1.yaml",
    "falco_rules-falco-0.28.1.yaml",
]
MUST_BE_COMPLETE = {"falco_rules.yaml", "falco-incubating_rules.yaml"}


@pytest.mark.shared
@pytest.mark.parametrize("name", FILES)
def test_upstream_rules_compile(shared_dir, name: str, capsys) -> None:
    from fcap.analyze.rules import load_rules

    ruleset = load_rules([str(shared_dir / "anchors/falco-rules" / name)])
    assert not ruleset.errors, "\n".join(map(str, ruleset.errors))
    compiled = compile_ruleset(ruleset)
    assert not compiled.errors, "\n".join(map(str, compiled.errors))
    assert [r.name for r in compiled.rules] == [r.name for r in ruleset.rules]
    full = [r for r in compiled.rules if not r.unsupported_fields]
    with capsys.disabled():
        print(f"\n{name}: {len(compiled.rules)}/{len(ruleset.rules)} rules compile; "
              f"{len(full)}/{len(compiled.rules)} "
              f"({100 * len(full) / max(len(compiled.rules), 1):.0f} %) use only fields fcap "
              "provides")
        for r in compiled.rules:
            if r.unsupported_fields:
                print(f"    {r.name}: unsupported {', '.join(r.unsupported_fields)}")
    if name in MUST_BE_COMPLETE:
        assert len(compiled.rules) == len(ruleset.rules)
    # the whole file is one query that DuckDB can plan over the enriched relation
    sql = build_sql([r for r in compiled.rules if r.enabled], "first")
    assert sql.count(" FROM events e") == 1
