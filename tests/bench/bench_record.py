"""Benchmark: the recorder under syscall storms, with a no-recorder baseline in the same run.

Storms come from a small C program compiled with gcc at bench time (Python
cannot issue a million syscalls a second): ``openat`` (open+close of a file
with a realistic path, in a loop) and ``exec`` (fork + execve(/bin/true) +
waitpid). The openat and exec storms run pinned to CPU 1 with the recorder
pinned to CPU 0; the openat storm runs again as one process per CPU, and so
does a cheap-syscall storm (``enoent``: a failing openat + close), with the
recorder unpinned (one storm process on one CPU cannot issue 1M syscalls/s on
this kind of VM even without a recorder). Each runs ``FCAP_BENCH_SECS``
(default 5) seconds. Printed per storm:

* storm syscalls/s without and with the recorder (the kernel-side cost of the
  probe is charged to the storm, so this is the overhead on the workload);
* events/s written to the capture, kernel drops (per CPU), and the highest
  *paced* storm rate that was recorded with zero drops (a short sweep runs
  when the unpaced storm drops events);
* recorder CPU (user+system of the whole recording process, all threads:
  drain, decode, Parquet writer) as a share of one core;
* bytes per event of the finished Parquet capture.

Then the probe's kernel-side cost alone (:func:`probe_cost`: CPU time per
recorded ``close(-1)`` and per unrecorded ``getppid``, min of 3, robust to
other load) and the userspace half alone (:func:`userspace_capacity`).

Targets (issue 2): >= 1,000,000 events/s with zero drops while writing,
recorder <= 1 core, <= 16 bytes/event for the openat storm with its paths.

Run: ``make bench`` / ``.venv/bin/python -m pytest tests/bench/bench_record.py -s``
or ``.venv/bin/python tests/bench/bench_record.py`` (root, bcc).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

SECS = float(os.environ.get("FCAP_BENCH_SECS", "5"))
WORK = Path(tempfile.gettempdir()) / "fcap-bench-record"
#: the storm's file lives on tmpfs (as on a node: the cost measured is the probe's, not the disk's)
DATA = Path("/dev/shm/fcap-bench-record")

STORM_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *mode = argv[1];
    double secs = atof(argv[2]);
    double rate = atof(argv[3]);          /* operations/s, 0 = as fast as possible */
    const char *path = argc > 4 ? argv[4] : "/bin/true";
    double t0 = now(), end = t0 + secs, t = t0;
    unsigned long n = 0;
    while (t < end) {
        for (int i = 0; i < 64; i++) {
            if (!strcmp(mode, "openat")) {
                int fd = openat(AT_FDCWD, path, O_RDONLY);
                if (fd >= 0) close(fd);
            } else if (!strcmp(mode, "enoent")) {   /* cheap syscalls: a failing open + close */
                int fd = openat(AT_FDCWD, path, O_RDONLY);
                close(fd);
            } else {
                pid_t p = fork();
                if (p == 0) { execl(path, path, "storm-arg", (char *)0); _exit(127); }
                waitpid(p, 0, 0);
            }
            n++;
        }
        t = now();
        if (rate > 0) {                       /* pace: busy-wait to the target */
            double due = t0 + n / rate;
            while ((t = now()) < due && t < end) {}
        }
    }
    printf("%lu %.6f\n", n, now() - t0);
    return 0;
}
"""


def build_storm() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    src, exe = WORK / "fcap-storm.c", WORK / "fcap-storm"
    src.write_text(STORM_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    target = DATA / "var" / "lib" / "app" / "config" / "settings.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("{}\n")
    return exe


def run_storm(exe: Path, mode: str, secs: float, rate: float = 0,
              cpus: tuple[int, ...] = (1,)) -> tuple[int, float, float]:
    """(operations, seconds, CPU seconds) of storms, one process pinned to each of ``cpus``."""
    arg = {"openat": str(DATA / "var/lib/app/config/settings.json"),
           "enoent": "/fcap-bench-missing/var/lib/app/config/settings.json"}.get(mode, "/bin/true")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [subprocess.Popen([str(exe), mode, str(secs), str(rate / len(cpus)), arg],
                              stdout=subprocess.PIPE, text=True,
                              preexec_fn=lambda c=c: os.sched_setaffinity(0, {c}))
             for c in cpus]  # fmt: skip
    outs = [p.communicate()[0] for p in procs]
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    n = sum(int(o.split()[0]) for o in outs)
    el = max(float(o.split()[1]) for o in outs)
    return n, el, cpu


def record_storm(exe: Path, mode: str, secs: float, rate: float = 0,
                 cpus: tuple[int, ...] = (1,)) -> dict:
    """Record while a storm runs; figures of the storm and of the recording."""
    from fcap.capture.recorder import RecordOptions, record
    from fcap.capture.syscalls import parse_syscalls

    out = WORK / f"rec-{mode}-{int(rate)}.parquet"
    if out.exists():
        out.unlink()
    shutil.rmtree(str(out) + ".partial", ignore_errors=True)  # an interrupted earlier run
    syscalls = parse_syscalls("openat,close" if mode in ("openat", "enoent") else None)
    ready, stop = threading.Event(), threading.Event()
    result: dict = {}

    def storm() -> None:
        try:
            ready.wait(120)
            time.sleep(0.3)
            result["ops"], result["secs"], result["cpu"] = run_storm(exe, mode, secs, rate, cpus)
            time.sleep(0.5)
        finally:
            stop.set()

    th = threading.Thread(target=storm)
    th.start()
    old = os.sched_getaffinity(0)
    if 0 not in cpus:
        os.sched_setaffinity(0, {0})
    try:
        res = record(RecordOptions(output=out, syscalls=syscalls, shell=False, quiet=True),
                     ready=ready, stop=stop, handle_signals=False)  # fmt: skip
    finally:
        os.sched_setaffinity(0, old)
        stop.set()
        th.join()
    size = sum(f.stat().st_size for f in res.files)
    per_op = 1 if mode == "exec" else 2
    return {
        "storm_ops_s": result["ops"] / result["secs"],
        "storm_cpu_ns_op": result["cpu"] / result["ops"] * 1e9,
        "recorder_cpu_ns_event": res.cpu_s / max(res.events, 1) * 1e9,
        "storm_syscalls_s": result["ops"] * per_op / result["secs"],
        "events": res.events,
        "events_s": res.events / result["secs"],
        "drops": res.drops_per_cpu,
        "recorder_cpu": res.cpu_s / res.elapsed_s,
        "elapsed_s": res.elapsed_s,
        "ring_peak": getattr(res, "ring_peak_fill", 0.0),
        "drain_gap_ms": getattr(res, "drain_gap_s", 0.0) * 1e3,
        "bytes_per_event": size / max(res.events, 1),
        "file_mb": size / 1e6,
    }


def bench(mode: str, exe: Path, cpus: tuple[int, ...] = (1,)) -> dict:
    per_op = 1 if mode == "exec" else 2
    n, el, cpu = run_storm(exe, mode, SECS, cpus=cpus)
    base = n / el
    base_ns = cpu / n * 1e9
    where = "storm on CPU 1, recorder on CPU 0" if cpus == (1,) else \
        f"storms on CPUs {list(cpus)}, recorder unpinned"
    print(f"\n== {mode} storm ({SECS:.0f}s, {where})")
    print(f"  without recorder: {base:,.0f} ops/s = {base * per_op:,.0f} syscalls/s, "
          f"storm CPU {base_ns:,.0f} ns/op")
    r = record_storm(exe, mode, SECS, cpus=cpus)
    print(f"  with recorder:    {r['storm_ops_s']:,.0f} ops/s = {r['storm_syscalls_s']:,.0f} syscalls/s "
          f"({r['storm_ops_s'] / base:.0%} of baseline)")
    print(f"  recorded:         {r['events']:,} events = {r['events_s']:,.0f} events/s, "
          f"drops per CPU {r['drops']}")
    if mode != "exec":
        print(f"  storm CPU:        {r['storm_cpu_ns_op']:,.0f} ns/op: probe cost "
              f"{(r['storm_cpu_ns_op'] - base_ns) / per_op:,.0f} ns per recorded syscall "
              "(kernel side, charged to the storm)")
    print(f"  recorder CPU:     {r['recorder_cpu']:.0%} of one core = "
          f"{r['recorder_cpu_ns_event']:,.0f} ns per event (drain + decode + Parquet)")
    print(f"  kept up:          recording {r['elapsed_s']:.1f}s for a {SECS:.0f}s storm, "
          f"ring peak {r['ring_peak']:.0%} full, longest gap between drains "
          f"{r['drain_gap_ms']:,.0f} ms")
    print(f"  on disk:          {r['file_mb']:.1f} MB, {r['bytes_per_event']:.2f} bytes/event")
    best = r["events_s"] if sum(r["drops"]) == 0 else 0.0
    if sum(r["drops"]) and mode != "exec":
        for frac in (0.9, 0.8, 0.6, 0.45):
            rate = r["storm_ops_s"] * frac
            p = record_storm(exe, mode, SECS, rate, cpus)
            print(f"  paced {rate:,.0f} ops/s: {p['events_s']:,.0f} events/s, drops {p['drops']}, "
                  f"recorder CPU {p['recorder_cpu']:.0%}")
            if sum(p["drops"]) == 0:
                best = p["events_s"]
                break
    print(f"  => sustained with zero drops: {best:,.0f} events/s")
    r["zero_drop_events_s"] = best
    r["baseline_ops_s"] = base
    return r


COST_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    int getppid_mode = argv[1][0] == 'g';
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (long i = 0; i < n; i++) {
        if (getppid_mode) syscall(SYS_getppid); else syscall(SYS_close, -1);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
"""


def probe_cost(rounds: int = 3, n: int = 400_000) -> dict:
    """Kernel-side cost of the probe per syscall, in CPU time of the calling process.

    A loop of ``close(-1)`` (recorded: ``--syscalls openat,close``) and one of
    ``getppid`` (not recorded: the cost every other syscall on the host pays)
    run pinned to CPU 1, without and with the probe loaded, alternately,
    ``rounds`` times; the minimum of each is kept, so other load on the host
    disturbs the figure little. The rings are large enough for every record
    (no drain runs, no drop happens: checked).
    """
    from fcap.capture.probe import Probe, ProbeConfig

    src, exe = WORK / "fcap-cost.c", WORK / "fcap-cost"
    src.write_text(COST_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)

    def run(mode: str) -> float:
        out = subprocess.run([str(exe), mode, str(n)], capture_output=True, text=True,
                             check=True, preexec_fn=lambda: os.sched_setaffinity(0, {1}))  # fmt: skip
        return float(out.stdout)

    res: dict[str, list[float]] = {k: [] for k in ("close", "getppid", "close_rec", "getppid_rec")}
    for _ in range(rounds):
        res["close"].append(run("close"))
        res["getppid"].append(run("getppid"))
        probe = Probe(ProbeConfig(syscalls=("openat", "close"), ring_mb=256, rings=1))
        try:
            res["close_rec"].append(run("close"))
            res["getppid_rec"].append(run("getppid"))
            assert sum(probe.drops_per_cpu()) == 0, probe.drops_per_cpu()
        finally:
            probe.close()
    best = {k: min(v) for k, v in res.items()}
    return {"recorded_ns": best["close_rec"] - best["close"],
            "unrecorded_ns": best["getppid_rec"] - best["getppid"], **best}


def userspace_capacity(n: int = 2_000_000) -> dict:
    """Events/s of the userspace half alone (find records, decode, write Parquet) on one core.

    The records are built with numpy in the ring layout (openat rows, 2,000
    distinct 40-byte paths, 300 pids), so this measures what the consumer can
    sustain independently of how fast this VM can issue syscalls.
    """
    import numpy as np
    from fcap.capture.decode import EVENT_DTYPE, S_PATH
    from fcap.capture.recorder import RecordOptions, merge_records  # noqa: F401
    from fcap.capture.ringbuf import FCAP_MAGIC, find_records
    from fcap.capture.syscall_table import SYSCALL_NR
    from fcap.capture.writer import CaptureWriter

    plen = 40
    rec = np.dtype([("len", "<u4"), ("pgoff", "<u4"), ("ev", EVENT_DTYPE), ("path", f"S{plen}")])
    a = np.zeros(n, rec)
    a["len"] = EVENT_DTYPE.itemsize + plen
    ev = a["ev"]
    ev["magic"] = FCAP_MAGIC
    rng = np.random.default_rng(1)
    openat = rng.random(n) < 0.5
    ev["nr"] = np.where(openat, SYSCALL_NR["openat"], SYSCALL_NR["close"])
    ev["ts"] = 10**12 + np.arange(n) * 1000
    pids = rng.integers(1000, 1300, n)
    ev["pid"] = pids
    ev["tid"] = pids
    ev["ppid"] = 1
    ev["comm"] = b"app"
    ev["cpu"] = rng.integers(0, 2, n)
    ev["res"] = np.where(openat, 3, 0)
    ev["fd"] = 3
    names = np.array([f"/var/lib/app/data/{i:06d}/settings.json".encode().ljust(plen - 1, b"x")
                      for i in range(2000)], dtype=f"S{plen}")  # fmt: skip
    a["path"] = names[rng.integers(0, 2000, n)]
    ev["slen"][:, S_PATH] = np.where(openat, plen, 0)
    a["len"] = np.where(openat, EVENT_DTYPE.itemsize + plen, EVENT_DTYPE.itemsize)
    buf = a.view(np.uint8)  # close records keep the (ignored) path bytes as padding
    a["len"] = EVENT_DTYPE.itemsize + plen  # records stay fixed-size; slen says what is used
    out = WORK / "userspace.parquet"
    if out.exists():
        out.unlink()
    shutil.rmtree(str(out) + ".partial", ignore_errors=True)
    t0 = time.perf_counter()
    c0 = time.process_time()
    w = CaptureWriter(out, meta={}, side_tables={})
    chunk = 131_072 * rec.itemsize  # the recorder's batch size
    from fcap.capture.decode import decode
    from fcap.capture.headers import Workspace

    work = Workspace()  # reused from batch to batch, as the recorder does
    dec = 0.0
    for off in range(0, len(buf), chunk):
        d0 = time.process_time()
        recs = find_records(buf[off : off + chunk])
        batch = decode(recs, boot_offset_ns=0, work=work)
        dec += time.process_time() - d0
        w.write(batch)
        w.flush()
    live_cpu = time.process_time() - c0
    live_el = time.perf_counter() - t0
    w.close()
    el = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"events_s": n / el, "cpu_ns_event": cpu / n * 1e9,
            "live_events_s": n / live_el, "live_cpu_ns_event": live_cpu / n * 1e9,
            "decode_cpu_ns_event": dec / n * 1e9,
            "bytes_per_event": out.stat().st_size / n}


@pytest.mark.live
@pytest.mark.slow
def test_bench_record() -> None:
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the storm generator")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs (storm and recorder pinned apart)")
    exe = build_storm()
    o = bench("openat", exe)
    o2 = bench("openat", exe, cpus=(0, 1))
    f = bench("enoent", exe, cpus=(0, 1))
    e = bench("exec", exe)
    c = probe_cost()
    print("\n== kernel-side cost per syscall (CPU of the calling process, min of 3, probe loaded "
          "without draining)")
    print(f"  recorded close(-1):   {c['close']:,.0f} -> {c['close_rec']:,.0f} ns = "
          f"+{c['recorded_ns']:,.0f} ns per recorded syscall")
    print(f"  unrecorded getppid(): {c['getppid']:,.0f} -> {c['getppid_rec']:,.0f} ns = "
          f"+{c['unrecorded_ns']:,.0f} ns per syscall that is not recorded")
    u = userspace_capacity()
    print("\n== userspace half alone (ring bytes -> numpy -> Parquet), 2M synthetic openat/close")
    print(f"  live loop (find + decode + journal): {u['live_events_s']:,.0f} events/s, "
          f"{u['live_cpu_ns_event']:,.0f} ns CPU/event (decode {u['decode_cpu_ns_event']:,.0f})")
    print(f"  including the final journal -> Parquet conversion: {u['events_s']:,.0f} events/s, "
          f"{u['cpu_ns_event']:,.0f} ns CPU/event, {u['bytes_per_event']:.2f} bytes/event")
    storms = {"openat storm on CPU 1": o, "openat storms on both CPUs": o2,
              "cheap-syscall storms on both CPUs": f}
    for name, r in storms.items():
        print(f"  {name}: {r['zero_drop_events_s']:,.0f} events/s with zero drops "
              f"(storm alone {r['baseline_ops_s'] * 2:,.0f} syscalls/s)")
    best = max(storms, key=lambda k: storms[k]["zero_drop_events_s"])
    print("\nsummary: zero-drop {:,.0f} ev/s ({}; target 1,000,000), openat storm on one CPU "
          "{:,.0f} ev/s, recorder {:.0%} core (target <= 100%), {:.2f} B/event (target <= 16); "
          "exec storm {:,.0f} ev/s".format(
              storms[best]["zero_drop_events_s"], best, o["zero_drop_events_s"],
              o["recorder_cpu"], o["bytes_per_event"], e["events_s"]))
    assert o["events"] > 0 and e["events"] > 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["userspace"]:
        print(userspace_capacity())
    else:
        exe = build_storm()
        bench("openat", exe)
        bench("openat", exe, cpus=(0, 1))
        bench("enoent", exe, cpus=(0, 1))
        bench("exec", exe)
        print(probe_cost())
        print(userspace_capacity())
