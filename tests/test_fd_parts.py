"""The descriptor state built in parts (``analyze/state/fdparts.py``, split by descriptor
number) equals the one-piece one.

``FCAP_FD_PARTS=N`` forces N parts (``memory.parts`` picks them when the whole
state would not fit in memory). Every ``fd.*`` column of the events view, and
every alert of a replay (whose pre-filter builds the state for some rows only),
must be the same as when the state is built in one piece.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from fcap.analyze import enrich
from fcap.analyze.compile.load import load_and_compile
from fcap.analyze.engine import replay_paths
from fcap.analyze.regress.runner import bundled_samples_dir
from fcap.analyze.state import fdparts, memory
from fcap.capture.reader import open_capture
from fcap.capture.synth import generate
from fields_fixture import open_events

from fcap.errors import ResourceError

SAMPLES = bundled_samples_dir()
SAMPLE_DIRS = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
#: Samples with dups of inherited descriptors (shell redirections, a reverse shell's
#: dup2 of its socket onto 0, 1 and 2).
INHERITING = ("reverse-shell", "shell-session", "container-shell")
SHARED_RULES = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "falco-rules"


def _set_parts(monkeypatch: pytest.MonkeyPatch, parts: int | None) -> None:
    """Force ``parts`` parts (None: as the available memory decides)."""
    if parts is None:
        monkeypatch.delenv("FCAP_FD_PARTS", raising=False)
    else:
        monkeypatch.setenv("FCAP_FD_PARTS", str(parts))


def _fd_view(paths: list[Path], monkeypatch: pytest.MonkeyPatch, parts: int | None
             ) -> pa.Table:
    _set_parts(monkeypatch, parts)
    con = open_events(paths if len(paths) > 1 else paths[0])
    cols = [r[0] for r in con.execute("DESCRIBE events").fetchall()
            if r[0].startswith("fd_") or r[0] in ("evt_num", "evt_type")]
    return con.sql(f"SELECT {', '.join(cols)} FROM events ORDER BY evt_num").to_arrow_table()


def _assert_same(a: pa.Table, b: pa.Table) -> None:
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name


@pytest.mark.parametrize("sample", SAMPLE_DIRS, ids=lambda p: p.name)
def test_events_fd_columns_equal_in_parts(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = _fd_view([sample], monkeypatch, None)
    _assert_same(one, _fd_view([sample], monkeypatch, 3))


def test_parts_are_used_and_balanced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forced parts run (one plan) and each descriptor number is in one part."""
    calls: list[int] = []
    plan = fdparts.plan

    def spy(con, n):
        calls.append(n)
        out = plan(con, n)
        t = con.execute("SELECT part, count(*), count(DISTINCT fd) FROM fc_fdpart "
                        "GROUP BY part").fetchall()
        assert len(t) == n
        assert all(c == u for _, c, u in t)
        return out

    monkeypatch.setattr(fdparts, "plan", spy)
    _fd_view([SAMPLES / "reverse-shell"], monkeypatch, 4)
    assert calls == [4]


def test_dup_sources_are_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the dup closure (the records of each dup's source descriptor, for its pid
    and its ancestors at the fork, in time windows) a part gets dup'ed descriptors wrong:
    the equality above is not trivial."""

    def no_closure(con, src, n, fdn, part):
        con.execute("CREATE OR REPLACE TEMP TABLE fc_fdneed AS "
                    "SELECT 0 AS part, 0::BIGINT AS rn WHERE false")

    wrong = 0
    for name in INHERITING:
        one = _fd_view([SAMPLES / name], monkeypatch, None)
        with monkeypatch.context() as m:
            m.setattr(fdparts, "_closure", no_closure)
            parts = _fd_view([SAMPLES / name], m, 3)
        wrong += one.column("fd_name").to_pylist() != parts.column("fd_name").to_pylist()
    assert wrong


def test_dup_windows_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A part reads a dup source's records from the latest close or dup before the dup,
    not all of them: the synthetic capture's dup2s onto 0, 1 and 2 (sources: busy
    descriptors of busy processes) do not make one part read most rows."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        cap = generate(Path(d) / "s.parquet", 100_000, seed=3)
        con = duckdb.connect()
        open_capture(cap).attach(con)
        enrich.prepare(con)
        n = 4
        fdparts.plan(con, n)
        sizes = [con.execute(f"SELECT count(*) FROM {fdparts._wrap(j, 'true')('raw_events_rn')}"
                             ).fetchone()[0] for j in range(n)]
        dups = con.execute("SELECT count(*) FROM raw_events WHERE syscall = 'dup2'").fetchone()[0]
    assert dups > 100
    assert max(sizes) < 0.4 * 100_000, sizes


def test_part_of() -> None:
    fdn = np.array([0, 1, 3, 255])
    part = np.array([2, 0, 1, 1], np.int32)
    got = fdparts.part_of(np.array([3, 255, 0, 7, -(2**62)]), fdn, part)
    assert got.tolist() == [1, 1, 2, -1, -1]


def test_synthetic_capture_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = generate(tmp_path / "s.parquet", 60_000, seed=7)
    _assert_same(_fd_view([cap], monkeypatch, None), _fd_view([cap], monkeypatch, 5))


def test_several_hosts_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Host pids (pid + host index * 2^22) are what parts are made of."""
    for host, name in (("a", "reverse-shell"), ("b", "shell-session")):
        shutil.copytree(SAMPLES / name, tmp_path / f"host=node-{host}")
    paths = [tmp_path / "host=node-a", tmp_path / "host=node-b"]
    _assert_same(_fd_view(paths, monkeypatch, None), _fd_view(paths, monkeypatch, 3))


def _alerts(rules: list[str], cap: Path, monkeypatch: pytest.MonkeyPatch,
            parts: int | None) -> list[tuple]:
    _set_parts(monkeypatch, parts)
    _, comp = load_and_compile(rules)
    return [(a.rule, a.evt_num, a.message) for a in replay_paths([cap], comp,
                                                                 rule_matching="all")]


@pytest.mark.parametrize("sample", INHERITING)
def test_replay_alerts_equal_in_parts(sample: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay's pre-filter builds the state for its kept rows only, here in parts."""
    rules = [str(SHARED_RULES / f) for f in ("falco_rules.yaml", "falco-incubating_rules.yaml",
                                             "falco-sandbox_rules.yaml")]
    if not SHARED_RULES.is_dir():
        rules = [str(Path(__file__).resolve().parents[1] / "rules")]
    one = _alerts(rules, SAMPLES / sample, monkeypatch, None)
    assert one
    assert _alerts(rules, SAMPLES / sample, monkeypatch, 3) == one


def test_memory_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FCAP_FD_PARTS", raising=False)
    monkeypatch.delenv("FCAP_NO_MEMORY_CHECK", raising=False)
    gib = 2**30
    monkeypatch.setattr(memory, "available_memory", lambda: 10 * gib)
    per = memory.STATE_BYTES_PER_EVENT
    assert memory.parts(10 * gib // per) == 1  # fits
    # 20 GiB needed, 6 GiB per part
    assert memory.parts(20 * gib // per) == 4
    with pytest.raises(ResourceError, match="too little even in 64 parts"):
        memory.parts(10 * gib * 65 // per)
    monkeypatch.setenv("FCAP_NO_MEMORY_CHECK", "1")
    assert memory.parts(20 * gib // per) == 1
    monkeypatch.setenv("FCAP_FD_PARTS", "7")
    assert memory.parts(10) == 7
    monkeypatch.setenv("FCAP_FD_PARTS", "many")
    with pytest.raises(ResourceError, match="not a number"):
        memory.parts(10)
