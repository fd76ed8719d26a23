"""Captures of several hosts: the replay rebuilds process and descriptor state per host.

Pids only identify a process within one host, so two nodes' captures opened
together must not share lineage or descriptor state. The bundled samples are
copied under hive ``host=`` folders to make "two nodes" whose pids collide.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from fcap.analyze.compile.load import load_and_compile
from fcap.analyze.engine import ReplayStats, replay
from fcap.analyze.regress.runner import bundled_rule_files, bundled_samples_dir
from fcap.capture.reader import open_capture
from test_sql_cli import fcap_cli as _cli

SAMPLES = bundled_samples_dir()


@pytest.fixture(scope="module")
def compiled():
    return load_and_compile(bundled_rule_files())[1]


def _node(tmp: Path, host: str, sample: str) -> Path:
    d = tmp / f"host={host}"
    d.mkdir(parents=True)
    return Path(shutil.copy(SAMPLES / sample / "capture.parquet", d / "capture.parquet"))


def _key(a):
    return (a.ts, a.evt_num, a.rule, a.message, a.output_fields)


def test_by_host_groups_files_in_input_order(tmp_path: Path) -> None:
    b = _node(tmp_path, "node-b", "reverse-shell")
    a = _node(tmp_path, "node-a", "benign-admin")
    parts = open_capture([b, a]).by_host()
    assert [p.hosts for p in parts] == [["node-b"], ["node-a"]]
    assert [p.paths for p in parts] == [(b,), (a,)]
    assert len(open_capture(b).by_host()) == 1


def test_same_capture_on_two_hosts_gives_each_hosts_alerts(tmp_path: Path, compiled) -> None:
    one = list(replay(SAMPLES / "reverse-shell" / "capture.parquet", compiled))
    assert one, "the sample should raise alerts with the bundled rules"
    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "reverse-shell")
    stats = ReplayStats()
    both = list(replay([a, b], compiled, stats=stats))
    # every pid collides between the two copies: a shared state would mix them
    assert [_key(x) for x in both if x.hostname == "node-a"] == [_key(x) for x in one]
    assert [_key(x) for x in both if x.hostname == "node-b"] == [_key(x) for x in one]
    assert len(both) == 2 * len(one)
    # event-time order, node-a first on equal times (input order)
    assert [(x.ts, x.hostname) for x in both] == sorted(
        (x.ts, x.hostname) for x in both)
    n = open_capture(a).num_events
    assert stats.events == 2 * n
    assert stats.alerts == len(both)
    assert sum(stats.by_rule.values()) == len(both)


def test_two_different_hosts_merge_by_time(tmp_path: Path, compiled) -> None:
    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "container-shell")
    ra, rb = list(replay(a, compiled)), list(replay(b, compiled))
    assert ra and rb
    both = list(replay([b, a], compiled))
    assert {x.hostname for x in ra} == {"node-a"} and {x.hostname for x in rb} == {"node-b"}
    merged = sorted([(x.ts, 0, i, _key(x)) for i, x in enumerate(rb)]
                    + [(x.ts, 1, i, _key(x)) for i, x in enumerate(ra)])
    assert [_key(x) for x in both] == [m[3] for m in merged]


def test_falco_hostname_overrides_every_host(tmp_path: Path, compiled, monkeypatch) -> None:
    monkeypatch.setenv("FALCO_HOSTNAME", "test-falco-hostname")
    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "reverse-shell")
    assert {x.hostname for x in replay([a, b], compiled)} == {"test-falco-hostname"}


def test_cli_replay_json_has_each_hosts_name(tmp_path: Path, capsys) -> None:
    import json

    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "reverse-shell")
    code, out, err = _cli(capsys, "replay", "--json", str(a), str(b))
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    hosts = [x["hostname"] for x in lines]
    assert hosts.count("node-a") == hosts.count("node-b") == len(lines) // 2 > 0
    n = open_capture(a).num_events
    assert f"Events processed: {2 * n}" in err


def test_hunting_several_hosts_does_not_warn(tmp_path: Path, capsys) -> None:
    """The events view keeps each host's state apart (tests/test_multihost_state.py):
    opening several hosts together is fine, with no warning."""
    import fcap.api

    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "benign-admin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cap = fcap.api.open([a, b])
    try:
        # same pids on both nodes (copies of samples of one machine), each its own names
        got = dict(cap.sql("SELECT host, count(DISTINCT proc_name) FROM events "
                           "GROUP BY host").fetchall())
        assert set(got) == {"node-a", "node-b"}
    finally:
        cap.close()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, out, err = _cli(capsys, "sql", str(a), str(b), "SELECT count(*) AS n FROM raw_events")
    assert code == 0, err
    n = open_capture(a).num_events + open_capture(b).num_events
    assert str(n) in out  # raw rows of both hosts are there, as recorded
    assert "warning" not in err


def test_hunting_alerts_of_several_hosts_are_per_host(tmp_path: Path, compiled) -> None:
    import fcap.api

    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "container-shell")
    want = {h: sorted((x.ts, x.rule, x.message) for x in replay(p, compiled))
            for h, p in (("node-a", a), ("node-b", b))}
    cap = fcap.api.open([b, a], rules=bundled_rule_files())
    try:
        rows = cap.sql("SELECT hostname, ts, rule, output, evt_num FROM alerts").fetchall()
        for h in want:
            assert sorted((r[1], r[2], r[3]) for r in rows if r[0] == h) == want[h]
        # every alert's evt_num is its event's number in this session (same host, same time)
        bad = cap.sql(
            "SELECT count(*) FROM alerts a LEFT JOIN events v ON v.evt_num = a.evt_num "
            "WHERE v.host IS DISTINCT FROM a.hostname OR v.ts IS DISTINCT FROM a.ts"
        ).fetchall()[0][0]
        assert bad == 0
        assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    finally:
        cap.close()


def test_one_host_of_several(tmp_path: Path, capsys, compiled) -> None:
    import json

    import fcap.api
    from fcap.errors import CaptureError

    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "container-shell")
    both = open_capture([a, b])
    assert both.select_hosts(["node-b"]).paths == (b,)
    with pytest.raises(CaptureError, match=r"no capture of host 'node-c'.*'node-a', 'node-b'"):
        both.select_hosts(["node-c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one host: no warning
        cap = fcap.api.open([a, b], host="node-a", prepare=False)
    try:
        assert cap.sql("SELECT DISTINCT host FROM raw_events").fetchall() == [("node-a",)]
    finally:
        cap.close()
    code, out, err = _cli(capsys, "replay", "--json", "--host", "node-b", str(a), str(b))
    assert code == 0, err
    got = [json.loads(x) for x in out.splitlines()]
    assert {x["hostname"] for x in got} == {"node-b"}
    assert len(got) == len(list(replay(b, compiled)))
    code, out, err = _cli(capsys, "sql", "--host", "node-c", str(a), str(b), "SELECT 1")
    assert code == 2
    assert err.strip().splitlines() == [
        "fcap: no capture of host 'node-c' (the captures are of 'node-a', 'node-b')"]


def test_info_names_each_hosts_file(tmp_path: Path, capsys) -> None:
    a = _node(tmp_path, "node-a", "reverse-shell")
    b = _node(tmp_path, "node-b", "container-shell")
    code, out, err = _cli(capsys, "info", str(a), str(b))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"capture     {tmp_path} (2 files, 2 hosts), ")
    assert [x.split()[0] for x in lines if x.startswith("  host=")] == [
        "host=node-a/capture.parquet", "host=node-b/capture.parquet"]
