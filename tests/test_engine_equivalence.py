"""The optimized one-scan replay gives the alerts of a naive per-rule evaluation.

The naive reference evaluates every rule on its own (``WHERE <rule.sql>``, the
event-type pre-filter folded in, no dispatch, no operand ordering, no folding of
``evt.type`` tests), applies ``first``/``all`` in Python, and computes each
alert's output values with one query per alert. The replay engine must agree, both
over the capture (a scan of the conditions' columns, then the output columns of the
matching rows: ``engine._two_step_matches``; also after the pre-filter scan of
:mod:`fcap.analyze.prefilter`) and over a table of the same rows (one
scan, output columns fetched by row id),
exactly (time, event, rule, message, output fields), on real recorded captures:
the bundled samples with the bundled rules and, when ../shared is present, the
upstream stable Falco rules.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from fcap.analyze import enrich
from fcap.analyze.compile import compile_ruleset
from fcap.analyze.compile.plan import rule_values
from fcap.analyze.engine import _alert, replay
from fcap.analyze.regress.runner import bundled_rule_files, bundled_samples_dir
from fcap.analyze.rules import load_rules
from fcap.capture.reader import open_capture

SAMPLES = bundled_samples_dir()
CAPTURES = sorted(p / "capture.parquet" for p in SAMPLES.iterdir()
                  if (p / "capture.parquet").is_file())  # fmt: skip


@pytest.fixture(scope="module")
def cons() -> dict[Path, tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]]:
    """Per sample: a connection with the ``events`` view and ``naive_events``, the
    view's rows materialized once (the naive reference reads that table), and a
    connection whose ``events`` is a table holding those rows."""
    out = {}
    for capture in CAPTURES:
        con = duckdb.connect()
        open_capture(capture).attach(con)
        enrich.build(con)
        con.execute("CREATE TABLE naive_events AS SELECT * FROM events")
        table = duckdb.connect()  # the same rows with ``events`` a table (fetch by row id)
        rows = con.sql("SELECT * FROM naive_events").to_arrow_table()  # noqa: F841
        table.execute("CREATE TABLE events AS SELECT * FROM rows")
        out[capture] = (con, table)
    return out


def naive(con: duckdb.DuckDBPyConnection, compiled, rule_matching: str) -> list[tuple]:
    rules = [r for r in compiled.rules if r.enabled]
    hits: dict[int, list[int]] = {}
    for i, r in enumerate(rules):
        for (evt_num,) in con.execute(
                f"SELECT e.evt_num FROM naive_events e WHERE coalesce({r.sql}, false)").fetchall():
            hits.setdefault(int(evt_num), []).append(i)
    by_rule: dict[int, list[int]] = {}
    for evt_num, idx in hits.items():
        for i in idx if rule_matching == "all" else idx[:1]:
            by_rule.setdefault(i, []).append(evt_num)
    out = []
    for i, nums in by_rule.items():
        r = rules[i]
        exprs = rule_values(r)
        vals_sql = f"[{', '.join(exprs)}]::VARCHAR[]" if exprs else "[]::VARCHAR[]"
        for evt_num, ts, vals in con.execute(
                f"SELECT e.evt_num, e.ts, {vals_sql} FROM naive_events e "
                "WHERE list_contains(?, e.evt_num)", [nums]).fetchall():
            a = _alert(r, int(ts), int(evt_num), vals, "h")
            out.append((a.ts, a.evt_num, i, a.rule, a.message, a.output_fields))
    out.sort(key=lambda x: x[:3])
    return [(ts, n, rule, msg, fields) for ts, n, _, rule, msg, fields in out]


def optimized(con, compiled, rule_matching: str, prefilter_scan: bool | None = None
              ) -> list[tuple]:
    return [(a.ts, a.evt_num, a.rule, a.message, a.output_fields)
            for a in replay(con, compiled, rule_matching=rule_matching, hostname="h",
                            prefilter_scan=prefilter_scan)]


def _check(cons, rule_files, rule_matching: str) -> int:
    compiled = compile_ruleset(load_rules(list(rule_files)))
    total = 0
    for capture, (con, table) in cons.items():
        want = naive(con, compiled, rule_matching)
        assert optimized(con, compiled, rule_matching) == want, capture
        # the pre-filter scan first (fcap.analyze.prefilter), forced on these small captures
        assert optimized(con, compiled, rule_matching, prefilter_scan=True) == want, capture
        assert optimized(table, compiled, rule_matching) == want, capture
        total += len(want)
    return total


@pytest.mark.parametrize("rule_matching", ["first", "all"])
def test_bundled_rules_on_every_sample(cons, rule_matching: str) -> None:
    assert len(cons) >= 8
    assert _check(cons, bundled_rule_files(), rule_matching) > 0  # real alerts compared


@pytest.mark.shared
@pytest.mark.parametrize("rule_matching", ["first", "all"])
def test_stable_falco_rules_on_every_sample(cons, shared_dir: Path, rule_matching: str) -> None:
    stable = shared_dir / "anchors/falco-rules/falco_rules.yaml"
    assert _check(cons, [stable], rule_matching) > 0
