"""Benchmark: replay >= 10M synthetic events through the full stable Falco ruleset.

Two parts: (1) the whole pipeline (capture -> ``enrich.prepare`` -> the replay,
which builds the per-row state its rules need and scans a view of their columns)
on an ``FCAP_BENCH_FULL_EVENTS`` (1M) capture, and
(2) the engine alone over ``FCAP_BENCH_EVENTS`` (10M) rows of that enriched
view, materialised in a DuckDB file (the 1M rows repeated), so that the rule
evaluation is measured at 10M without the enrichment's cost.

Part (1) details:
Prints, for DuckDB threads = 1 and 2 (one fresh process each): events/s of the
replay (including the per-row fd state it builds), the time of opening the
capture and ``enrich.prepare`` (process, user and container tables), events/s
from capture to alerts, a baseline scan of two raw columns in the same run, the
peak resident memory of the process, and the time to load and compile the rules;
then, with 2 threads, the same replay without the pre-filter scan
(``prefilter_scan=False``: the exact conditions over every event of the rules'
types, the descriptor state for every row) as a second baseline.
Target: >= 5M events/s on the 2-core machine, memory bounded by DuckDB.

Run: ``make bench`` or ``.venv/bin/python -m pytest tests/bench -s``, or directly
``.venv/bin/python tests/bench/bench_replay.py [N_EVENTS]``. The capture is
cached under ``/tmp/fcap-bench/``. ``FCAP_BENCH_EVENTS`` overrides the size of
part (2), ``FCAP_BENCH_FULL_EVENTS`` the size of part (1):
``FCAP_BENCH_FULL_EVENTS=10000000`` replays a 10M capture end to end (capture,
enrichment, ``events`` view, replay). ``FCAP_BENCH_PARTS=full`` or ``engine``
runs one part only. Part (1) also replays with the descriptor state in
``FCAP_BENCH_FD_PARTS`` (default 4) parts, the bounded-memory mode, and prints its
peak RSS beside the one-piece one. CPU seconds are printed next to wall times: on a shared
machine they are the steadier figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
N_DEFAULT = int(os.environ.get("FCAP_BENCH_EVENTS", "10000000"))
#: events of the capture replayed through the whole pipeline (enrichment included)
N_FULL = int(os.environ.get("FCAP_BENCH_FULL_EVENTS", "1000000"))
#: which parts run: "full" (the pipeline over a capture), "engine" (materialised events)
#: Parts of the descriptor state for the bounded-memory run (FCAP_FD_PARTS).
FD_PARTS = int(os.environ.get("FCAP_BENCH_FD_PARTS", "4"))
PARTS = {p.strip() for p in os.environ.get("FCAP_BENCH_PARTS", "full,engine").split(",")}
#: the synthetic capture repeated into the materialised events table of part (2)
N_BASE = 1_000_000
CACHE = Path("/tmp/fcap-bench")


def stable_rules() -> Path:
    p = SHARED / "anchors/falco-rules/falco_rules.yaml"
    if p.exists():
        return p
    return REPO / "rules"


def capture(n: int) -> Path:
    from fcap.capture import synth

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"synth-{n}.parquet"
    if not path.exists():
        t = time.perf_counter()
        synth.generate(path.with_suffix(".tmp.parquet"), n, seed=1)
        path.with_suffix(".tmp.parquet").rename(path)
        print(f"generated {n:,} events in {time.perf_counter() - t:.1f}s -> {path}")
    return path


def timed_replay(con: object, compiled: object, prefilter: bool | None = None
                 ) -> tuple[float, float, int, float]:
    """One replay of ``compiled`` over ``con``'s events: wall s, CPU s, alerts, peak RSS MB."""
    import resource

    from fcap.analyze.engine import ReplayStats, replay

    stats = ReplayStats()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in replay(con, compiled, stats=stats, prefilter_scan=prefilter):
        pass
    t_replay, cpu = time.perf_counter() - t0, time.process_time() - c0
    return t_replay, cpu, stats.alerts, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(path: str, threads: int, rules: str, prefilter: bool | None = None) -> dict:
    """One measurement in a fresh process (so ru_maxrss is this run's peak).

    ``prefilter``: the replay's ``prefilter_scan`` (None: its default)."""
    import duckdb
    from fcap.analyze import enrich
    from fcap.analyze.compile import compile_ruleset
    from fcap.analyze.rules import load_rules
    from fcap.capture.reader import open_capture

    t0 = time.perf_counter()
    compiled = compile_ruleset(load_rules([rules]))
    t_rules = time.perf_counter() - t0
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    t0 = time.perf_counter()
    open_capture(path).attach(con)
    enrich.prepare(con)
    t_build = time.perf_counter() - t0
    n = con.execute("SELECT count(*) FROM raw_events").fetchone()[0]
    t0 = time.perf_counter()
    con.execute("SELECT count(pid), count(path) FROM raw_events").fetchone()
    t_scan = time.perf_counter() - t0
    # the replay builds the per-row stages its rules' columns need (here the fd state)
    t_replay, cpu, alerts, rss = timed_replay(con, compiled, prefilter)
    return {"events": n, "build_s": t_build, "scan_s": t_scan, "replay_s": t_replay,
            "cpu_s": cpu, "eps": n / t_replay, "eps_with_build": n / (t_replay + t_build),
            "scan_eps": n / t_scan, "alerts": alerts, "rss_mb": rss,
            "rules_s": t_rules, "rules": len(compiled.rules)}


def measure(path: Path, threads: int, prefilter: bool | None = None,
            fd_parts: int | None = None) -> dict:
    """One worker run; ``fd_parts``: the descriptor state in that many parts
    (``FCAP_FD_PARTS``; None: as the available memory decides, one piece here)."""
    env = {k: v for k, v in os.environ.items() if k != "FCAP_FD_PARTS"}
    if fd_parts:
        env["FCAP_FD_PARTS"] = str(fd_parts)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(path), str(threads), str(stable_rules()),
         {None: "auto", True: "on", False: "off"}[prefilter]],
        capture_output=True, text=True, check=True, cwd=REPO, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(n: int = N_DEFAULT) -> list[dict]:
    path = capture(n)
    size = path.stat().st_size / 1e6
    print(f"capture: {path} ({size:.0f} MB, {n:,} events); rules: {stable_rules()}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for threads in (1, 2):
        r = measure(path, threads)
        rows.append({"threads": threads, **r})
        print(f"threads={threads}: replay incl. its per-row state {r['eps'] / 1e6:.3f} M events/s "
              f"({r['replay_s']:.1f}s, {r['cpu_s']:.1f}s CPU, {r['alerts']} alerts) | open + "
              f"enrich.prepare {r['build_s']:.1f}s (capture to alerts: "
              f"{r['eps_with_build'] / 1e6:.3f} M events/s) | baseline scan of two raw columns "
              f"{r['scan_eps'] / 1e6:.1f} M events/s | peak RSS {r['rss_mb']:.0f} MB", flush=True)
    b = measure(path, 2, prefilter=False)
    print(f"baseline, threads=2, without the pre-filter scan (prefilter_scan=False): replay "
          f"{b['eps'] / 1e6:.3f} M events/s ({b['replay_s']:.1f}s, {b['cpu_s']:.1f}s CPU, "
          f"{b['alerts']} alerts), capture to alerts {b['eps_with_build'] / 1e6:.3f} M events/s, "
          f"peak RSS {b['rss_mb']:.0f} MB", flush=True)
    assert b["alerts"] == rows[-1]["alerts"]
    p = measure(path, 2, fd_parts=FD_PARTS)
    print(f"descriptor state in {FD_PARTS} parts (FCAP_FD_PARTS={FD_PARTS}, what a machine "
          f"with too little memory for one piece gets), threads=2: replay {p['eps'] / 1e6:.3f} M "
          f"events/s ({p['replay_s']:.1f}s, {p['cpu_s']:.1f}s CPU, {p['alerts']} alerts), "
          f"peak RSS {p['rss_mb']:.0f} MB (one piece: {rows[-1]['rss_mb']:.0f} MB)", flush=True)
    assert p["alerts"] == rows[-1]["alerts"]
    r = rows[0]
    print(f"rules: {r['rules']} loaded and compiled in {r['rules_s'] * 1000:.0f} ms")
    best = max(x["eps"] for x in rows)
    print(f"best: {best / 1e6:.3f} M events/s (target 5.00)")
    return rows


def engine_worker(db: str, threads: int, rules: str) -> dict:
    """The engine alone over a materialised ``events`` table (no enrichment cost)."""
    import duckdb
    from fcap.analyze.compile import compile_ruleset
    from fcap.analyze.rules import load_rules

    compiled = compile_ruleset(load_rules([rules]))
    con = duckdb.connect(db, read_only=True)
    con.execute(f"SET threads = {threads}")
    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
    t0 = time.perf_counter()
    con.execute("SELECT count(*) FROM events e WHERE e.proc_name IS NOT NULL "
                "AND e.fd_name IS NOT NULL").fetchone()
    t_scan = time.perf_counter() - t0
    t_replay, cpu, alerts, rss = timed_replay(con, compiled)
    return {"events": n, "replay_s": t_replay, "cpu_s": cpu, "eps": n / t_replay,
            "scan_eps": n / t_scan, "alerts": alerts, "rss_mb": rss}


def engine_table(n: int) -> Path:
    """A DuckDB file whose ``events`` table holds ``n`` rows of the enriched view
    of an N_BASE-event synthetic capture, repeated (evt_num and ts shifted)."""
    import duckdb
    from fcap.analyze import enrich
    from fcap.capture.reader import open_capture

    db = CACHE / f"events-{n}.duckdb"
    if db.exists():
        return db
    base = capture(N_BASE)
    tmp = db.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    t = time.perf_counter()
    con = duckdb.connect(str(tmp))
    open_capture(base).attach(con)
    enrich.build(con)
    con.execute("CREATE TABLE ev1 AS SELECT * FROM events")
    con.execute("DROP VIEW events")  # the enriched view; the table below takes its name
    reps = -(-n // N_BASE)
    span = con.execute("SELECT max(ts) - min(ts) + 1 FROM ev1").fetchone()[0]
    con.execute("SET preserve_insertion_order = true")
    con.execute("CREATE TABLE events AS SELECT * FROM ev1 WHERE false")
    for k in range(reps):  # one copy at a time: memory stays at one copy's size
        con.execute(
            f"INSERT INTO events SELECT * REPLACE (e.evt_num + {k * N_BASE} AS evt_num, "
            f"e.ts + {k * span} AS ts) FROM ev1 e "
            f"WHERE e.evt_num + {k * N_BASE} <= {n} ORDER BY e.evt_num"
        )
    con.execute("DROP TABLE ev1")
    con.close()
    tmp.rename(db)
    print(f"materialised {n:,} enriched events in {time.perf_counter() - t:.0f}s -> {db}")
    return db


def run_engine(n: int = N_DEFAULT) -> list[dict]:
    # built in its own process: Linux keeps a process's peak RSS across fork and exec, so a
    # table built here would become the workers' "peak RSS"
    out = subprocess.run([sys.executable, __file__, "--engine-table", str(n)],
                         capture_output=True, text=True, check=True, cwd=REPO)
    print(out.stdout, end="", flush=True)
    db = Path(out.stdout.strip().splitlines()[-1])
    print(f"engine only: {db}; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for threads in (1, 2):
        out = subprocess.run(
            [sys.executable, __file__, "--engine-worker", str(db), str(threads),
             str(stable_rules())], capture_output=True, text=True, check=True, cwd=REPO)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"threads": threads, **r})
        print(f"engine only, threads={threads}: {r['eps'] / 1e6:.2f} M events/s over "
              f"{r['events']:,} materialised events ({r['replay_s']:.1f}s wall, {r['cpu_s']:.1f}s "
              f"CPU, {r['alerts']} alerts, peak RSS {r['rss_mb']:.0f} MB) | baseline scan of two "
              f"columns {r['scan_eps'] / 1e6:.1f} M events/s", flush=True)
    return rows


def test_bench_replay() -> None:
    if "full" in PARTS:
        rows = run(N_FULL)
        assert all(x["events"] == N_FULL for x in rows)
        assert len({x["alerts"] for x in rows}) == 1  # same alerts whatever the threads
    if "engine" in PARTS:
        rows = run_engine(N_DEFAULT)
        assert all(x["events"] >= N_DEFAULT for x in rows)
        assert len({x["alerts"] for x in rows}) == 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(REPO))
        mode = {"auto": None, "on": True, "off": False}[sys.argv[5] if len(sys.argv) > 5 else "auto"]
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]), sys.argv[4], mode)))
    elif len(sys.argv) > 1 and sys.argv[1] == "--engine-table":
        sys.path.insert(0, str(REPO))
        print(engine_table(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--engine-worker":
        sys.path.insert(0, str(REPO))
        print(json.dumps(engine_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
    else:
        if "full" in PARTS:
            run(N_FULL)
        if "engine" in PARTS:
            run_engine(int(sys.argv[1]) if len(sys.argv) > 1 else N_DEFAULT)
