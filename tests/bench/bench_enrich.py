"""Benchmark: build the enriched events relation for >= 10M synthetic events.

Prints, per DuckDB thread count (1 and 2): the seconds of each stage of
``fcap.analyze.enrich.build`` (processes, users, containers, positions, fds and
its sub-steps ``fds.*``, view), events/s of the whole build, events/s of one full pass over the view
reading the columns rules use most (proc.name/pname/cmdline/aname[2], fd.name,
user.name, container.id) -- first over a view with only those columns' joins
(``enrich.build_view``), then over the full ``events`` view -- and the peak
resident memory of the process after the build and after each pass.
Baseline in the same run: the bare ASOF join of events to the process-chain
table (the cost floor measured in perf-anchors 2d). Target: >= 5M events/s.

Run: ``.venv/bin/python -m pytest tests/bench/bench_enrich.py -s`` or directly
``.venv/bin/python tests/bench/bench_enrich.py [N_EVENTS]``; the capture is
cached under ``/tmp/fcap-bench/``; ``FCAP_BENCH_EVENTS`` overrides the size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
N_DEFAULT = int(os.environ.get("FCAP_BENCH_EVENTS", "10000000"))
CACHE = Path("/tmp/fcap-bench")


def capture(n: int) -> Path:
    from fcap.capture import synth

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"synth-{n}.parquet"
    if not path.exists():
        t = time.perf_counter()
        tmp = path.with_suffix(".tmp.parquet")
        synth.generate(tmp, n, seed=1)
        tmp.rename(path)
        print(f"generated {n:,} events in {time.perf_counter() - t:.1f}s -> {path}")
    return path


def worker(path: str, threads: int) -> dict:
    """One measurement in a fresh process (so ru_maxrss is this run's peak)."""
    import resource

    import duckdb
    from fcap.analyze import enrich
    from fcap.capture.reader import open_capture

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    open_capture(path).attach(con)
    n = con.execute("SELECT count(*) FROM raw_events").fetchone()[0]
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    enrich.build(con, timings=stages)
    build_s = time.perf_counter() - t0
    build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    query = (
        "SELECT count(proc_name), count(proc_pname), count(proc_cmdline), "
        "count(proc_anames[3]), count(fd_name), count(user_name), count(container_id) FROM {}"
    )
    # the same pass over a view with only those columns' joins (enrich.build_view)
    enrich.build_view(con, "events_narrow", ["proc_name", "proc_pname", "proc_cmdline",
                                             "proc_anames", "fd_name", "user_name",
                                             "container_id"])
    t0 = time.perf_counter()
    con.execute(query.format("events_narrow")).fetchall()
    narrow_s = time.perf_counter() - t0
    narrow_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    con.execute(query.format("events")).fetchall()
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    con.execute(
        "SELECT count(c.cid) FROM raw_events x ASOF LEFT JOIN fc_chain c "
        "ON c.pid = x.pid AND x.ts >= c.s"
    ).fetchall()
    asof_s = time.perf_counter() - t0
    sizes = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("fc_pinst", "fc_chain", "fc_fdrec")
    }
    return {
        "events": n, "threads": threads, "stages": stages, "build_s": build_s,
        "scan_s": scan_s, "narrow_s": narrow_s, "narrow_maxrss_mb": narrow_rss, "asof_s": asof_s, "sizes": sizes,
        "build_maxrss_mb": build_rss,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(n: int) -> list[dict]:
    path = capture(n)
    out = []
    for threads in (2, 1):
        res = subprocess.run(
            [sys.executable, __file__, "--worker", str(path), str(threads)],
            capture_output=True, text=True, check=True, cwd=REPO,
        )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        out.append(r)
        ev = r["events"]
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["stages"].items())
        print(
            f"threads={threads}: build {r['build_s']:.2f}s = {ev / r['build_s'] / 1e6:.2f}M ev/s "
            f"[{stages}]; full view pass {r['scan_s']:.2f}s = {ev / r['scan_s'] / 1e6:.2f}M ev/s; "
            f"same pass over a build_view with those columns {r['narrow_s']:.2f}s = "
            f"{ev / r['narrow_s'] / 1e6:.2f}M ev/s (peak RSS {r['narrow_maxrss_mb']:.0f} MB); "
            f"build+pass {ev / (r['build_s'] + r['scan_s']) / 1e6:.2f}M ev/s; baseline ASOF "
            f"{ev / r['asof_s'] / 1e6:.2f}M ev/s; peak RSS {r['build_maxrss_mb']:.0f} MB after the "
            f"build, {r['maxrss_mb']:.0f} MB after the pass; "
            f"tables {r['sizes']}"
        )
    return out


def test_bench_enrich() -> None:
    results = run(N_DEFAULT)
    assert all(r["events"] >= min(N_DEFAULT, 10_000_000) for r in results)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]))))
    else:
        run(int(sys.argv[1]) if len(sys.argv) > 1 else N_DEFAULT)
