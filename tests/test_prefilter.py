"""The replay's pre-filter: rule relaxations (compile.relax) and the raw-row scan (prefilter).

A relaxation must hold on every event its rule matches (else the replay loses
alerts): checks the raw row cannot decide become the constant that only widens
the result, and ``fd.*`` checks stay exact only where the row's descriptor
record is its own. The alerts with and without the pre-filter are compared on
every sample in tests/test_engine_equivalence.py; here: the relaxations' shape,
the own-record columns against the events view, and the fallbacks.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from fcap.analyze import enrich, prefilter
from fcap.analyze.compile import compile_ruleset
from fcap.analyze.compile.relax import relaxed
from fcap.analyze.compile.ruleset import default_catalog
from fcap.analyze.compile.typecheck import TypeChecker
from fcap.analyze.condition.parser import parse_condition
from fcap.analyze.engine import replay
from fcap.analyze.fields.columns import needs
from fcap.analyze.regress.runner import bundled_rule_files, bundled_samples_dir
from fcap.analyze.rules import load_rules
from fcap.analyze.state import stages
from fcap.capture.reader import open_capture

SAMPLES = bundled_samples_dir()
CAPTURES = sorted(p / "capture.parquet" for p in SAMPLES.iterdir()
                  if (p / "capture.parquet").is_file())  # fmt: skip


def relax(text: str) -> str:
    expr = parse_condition(text)
    typed = TypeChecker(default_catalog()).run(expr)
    assert typed.ok
    return relaxed(typed, expr)


def test_join_checks_widen_by_polarity() -> None:
    # proc.name needs the process chain: true where it counts positively ...
    assert relax("proc.name = bash") == "true"
    # ... false under a not, so "not proc.name = bash" widens to true as well
    assert relax("not proc.name = bash") == "true"
    assert relax("evt.type = openat and not proc.name in (a, b)") == "(e.evt_type = 'openat')"
    # an or with an undecidable side keeps everything
    assert relax("evt.type = openat or proc.name = bash") == "true"
    assert relax("not (evt.type = openat and proc.name = bash)") == "true"
    assert relax("not (evt.type = openat or proc.name = bash)") == (
        "(NOT coalesce((e.evt_type = 'openat'), false))")


def test_fd_checks_exact_on_own_records_only() -> None:
    sql = relax("fd.name = /etc/shadow")
    assert sql == ("(CASE WHEN e.fc_fdk THEN coalesce((e.fd_name = '/etc/shadow'), false) "
                   "ELSE true END)")
    neg = relax("not fd.name = /etc/shadow")
    assert "ELSE false END" in neg and neg.startswith("(NOT ")
    # fd.num is the raw fd column: exact on every row
    assert relax("fd.num >= 0") == "(e.fd_num >= 0)"


def test_needs_classifies_columns() -> None:
    n = needs()
    assert n["fd_name"] == {"fd"}
    assert n["proc_name"] == {"join"}
    assert n["fd_num"] == frozenset()
    assert n["evt_is_open_read"] == frozenset()
    assert n["container_id"] == {"join"}
    assert n["fd_containername"] == {"fd", "join"}


@pytest.fixture(scope="module")
def prepared() -> dict[Path, duckdb.DuckDBPyConnection]:
    out = {}
    for capture in CAPTURES:
        con = duckdb.connect()
        open_capture(capture).attach(con)
        enrich.prepare(con)
        out[capture] = con
    return out


def test_own_record_columns_equal_the_events_view(prepared) -> None:
    """Where ``fc_fdk`` holds, every fd column computed from the raw row alone equals the
    events view's (the descriptor state); the scan marks at least the successful opens."""
    cols = sorted(c for c, k in needs().items() if k == {"fd"})
    marked = 0
    for capture, con in prepared.items():
        enrich.build_view(con, "pf_full", cols, with_rn=True)
        rel = enrich.row_relation(con, cols)
        diff = " OR ".join(f"a.{c} IS DISTINCT FROM b.{c}" for c in cols)
        bad = con.execute(f"SELECT count(*) FROM {rel} a JOIN pf_full b USING (_rn) "
                          f"WHERE a.fc_fdk AND ({diff})").fetchall()[0][0]
        assert bad == 0, capture
        n, opens = con.execute(
            f"SELECT count(*) FILTER (fc_fdk), count(*) FILTER (evt_type = 'openat' AND res >= 0 "
            f"AND NOT fc_fdk) FROM {rel}").fetchall()[0]
        assert opens == 0, capture
        marked += n
    assert marked > 1000


def test_row_relation_refuses_joined_columns(prepared) -> None:
    con = next(iter(prepared.values()))
    with pytest.raises(ValueError, match="proc_name"):
        enrich.row_relation(con, ["fd_name", "proc_name"])


def _alerts(con, compiled, **kw) -> list[tuple]:
    return [(a.ts, a.evt_num, a.rule, a.message) for a in replay(con, compiled, **kw)]


def test_stage_keeps_few_rows_and_falls_back_over_the_cap(prepared, monkeypatch) -> None:
    compiled = compile_ruleset(load_rules(list(bundled_rule_files())))
    rules = [r for r in compiled.rules if r.enabled]
    assert all(r.relaxed is not None for r in rules)
    capture = SAMPLES / "reverse-shell" / "capture.parquet"
    con = prepared[capture]
    total = con.execute("SELECT count(*) FROM raw_events").fetchall()[0][0]
    st = prefilter.stage(con, rules, "pf_test_rows", total)
    assert st is not None
    try:
        assert 0 < st.kept < total / 2  # the bundled rules' relaxations do narrow the events
    finally:
        st.drop(con)
    want = _alerts(con, compiled, prefilter_scan=False)
    assert want
    assert _alerts(con, compiled, prefilter_scan=True) == want
    monkeypatch.setattr(prefilter, "cap", lambda events: 0)  # every stage is over the cap
    assert prefilter.stage(con, rules, "pf_test_rows", total) is None
    assert not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'pf_test_rows'"
                           ).fetchall()
    assert _alerts(con, compiled, prefilter_scan=True) == want


def _fd_view_rows(capture: Path, cols: list[str], step: int, partial: bool) -> list[tuple]:
    con = duckdb.connect()
    open_capture(capture).attach(con)
    enrich.prepare(con)
    con.execute(f"CREATE TABLE sub AS SELECT _rn AS rn FROM raw_events_rn WHERE _rn % {step} = 0")
    built = stages.ensure(con, {"fd"}, rows="sub" if partial else None)
    assert built == partial
    enrich.build_view(con, "v", cols, with_rn=True, rows="sub")
    out = con.execute(f"SELECT _rn, {', '.join(cols)} FROM v ORDER BY _rn").fetchall()
    if partial:
        stages.drop_partial(con)
        assert not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name IN "
                               "('fc_rid', 'fc_fdrec', 'fc_fdpartial')").fetchall()
    return out


@pytest.mark.parametrize("step", [1, 3])
def test_partial_descriptor_state_equals_the_full_one_on_its_rows(step: int) -> None:
    """The descriptor state built from the record rows plus some rows gives those rows
    the fd columns of the state built from every row (every sample; every row, or a
    third of them)."""
    cols = sorted(c for c, k in needs().items() if "fd" in k)
    compared = 0
    for capture in CAPTURES:
        full = _fd_view_rows(capture, cols, step, partial=False)
        assert _fd_view_rows(capture, cols, step, partial=True) == full, capture
        compared += sum(1 for row in full if any(v is not None for v in row[1:]))
    assert compared > 1000
