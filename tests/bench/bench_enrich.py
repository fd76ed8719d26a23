"""Benchmark: build the enriched events relation for >= 10M synthetic events.

Prints, per DuckDB thread count (2 and 1): the seconds of ``enrich.prepare``
(the eager tables: processes, users, containers, container keys, evt_num
breaks) and then, over the lazy views of ``enrich.build_view``:
(a) one pass reading the process/user/container columns rules use most
(proc.name/pname/cmdline/aname[2], user.name, container.id, evt.num): no
per-row state, the process chain is a hash join in the view; (b) the same
plus fd.name: the time to build the descriptor state (positions, fds) and one
pass; (c) one pass over the full ``events`` view; events/s of each path from
the raw capture, and the peak resident memory after each step. Baseline in
the same run: the bare ASOF join of events to the process-chain table (the
cost floor measured in perf-anchors 2d). Target: >= 5M events/s.

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

    def rss() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def timed(sql: str) -> float:
        t = time.perf_counter()
        con.execute(sql).fetchall()
        return time.perf_counter() - t

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    open_capture(path).attach(con)
    n = con.execute("SELECT count(*) FROM raw_events").fetchone()[0]
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    enrich.prepare(con, timings=stages)
    prepare_s = time.perf_counter() - t0
    prepare_rss = rss()
    # (a) a view of the process/user/container columns rules use most: no per-row state
    proc_cols = ["proc_name", "proc_pname", "proc_cmdline", "proc_anames", "user_name",
                 "container_id"]
    t0 = time.perf_counter()
    enrich.build_view(con, "ev_proc", proc_cols)  # no per-row table: the ASOF join is in the view
    keys_s = time.perf_counter() - t0
    proc_s = timed("SELECT count(proc_name), count(proc_pname), count(proc_cmdline), "
                   "count(proc_anames[3]), count(user_name), count(container_id), "
                   "max(evt_num) FROM ev_proc")
    proc_rss = rss()
    # (b) the same plus fd.name: builds the descriptor state (fc_pos, fc_rid, fc_fdrec)
    t0 = time.perf_counter()
    enrich.build_view(con, "ev_fd", [*proc_cols, "fd_name"])
    fd_build_s = time.perf_counter() - t0
    fd_pass_s = timed("SELECT count(proc_name), count(proc_pname), count(proc_cmdline), "
                      "count(proc_anames[3]), count(user_name), count(container_id), "
                      "count(fd_name) FROM ev_fd")
    fd_rss = rss()
    # (c) one pass over the full events view (every column's joins)
    enrich.build_view(con)
    full_s = timed("SELECT count(proc_name), count(fd_name), count(user_name), "
                   "count(container_id) FROM events")
    asof_s = timed("SELECT count(c.cid) FROM raw_events x ASOF LEFT JOIN fc_chain c "
                   "ON c.pid = x.pid AND x.ts >= c.s")
    sizes = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
             for t in ("fc_pinst", "fc_chain", "fc_fdrec")}
    return {
        "events": n, "threads": threads, "stages": stages, "prepare_s": prepare_s,
        "prepare_rss": prepare_rss, "keys_s": keys_s, "proc_s": proc_s, "proc_rss": proc_rss,
        "fd_build_s": fd_build_s, "fd_pass_s": fd_pass_s, "fd_rss": fd_rss,
        "full_s": full_s, "asof_s": asof_s, "sizes": sizes, "maxrss_mb": rss(),
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

        def eps(sec: float, ev: int = ev) -> str:
            return f"{ev / sec / 1e6:.2f}M ev/s"

        print(
            f"threads={threads}: prepare {r['prepare_s']:.2f}s [{stages}], peak RSS "
            f"{r['prepare_rss']:.0f} MB | (a) view of proc/user/container columns: build "
            f"{r['keys_s']:.2f}s, one pass {r['proc_s']:.2f}s -> prepare+view+pass "
            f"{eps(r['prepare_s'] + r['keys_s'] + r['proc_s'])}, peak RSS {r['proc_rss']:.0f} MB | "
            f"(b) + fd.name: descriptor state {r['fd_build_s']:.2f}s, pass {r['fd_pass_s']:.2f}s "
            f"-> prepare+views+fd state+pass "
            f"{eps(r['prepare_s'] + r['keys_s'] + r['fd_build_s'] + r['fd_pass_s'])}, peak RSS "
            f"{r['fd_rss']:.0f} MB | (c) pass over the full events view {r['full_s']:.2f}s, peak "
            f"RSS {r['maxrss_mb']:.0f} MB | baseline bare ASOF {eps(r['asof_s'])} | "
            f"tables {r['sizes']}", flush=True)
    return out


def test_bench_enrich() -> None:
    results = run(N_DEFAULT)
    assert all(r["events"] >= min(N_DEFAULT, 10_000_000) for r in results)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]))))
    else:
        run(int(sys.argv[1]) if len(sys.argv) > 1 else N_DEFAULT)
