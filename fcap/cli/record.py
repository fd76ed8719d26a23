"""``fcap record``: record syscalls with eBPF into a Parquet capture."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from fcap.cli import app
from fcap.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.I)


def parse_size(text: str | None) -> int | None:
    """'100M', '2G', '512k', '1000' -> bytes."""
    if not text:
        return None
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"bad size {text!r}", hint="e.g. 512M or 2G")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def parse_duration(text: str | None) -> float | None:
    """'30', '30s', '5m', '1h', '500ms' -> seconds."""
    if not text:
        return None
    m = _DUR.match(text)
    if not m:
        raise UsageError(f"bad duration {text!r}", hint="e.g. 30s, 5m or 1h")
    mult = {None: 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2) and m.group(2).lower()]
    return float(m.group(1)) * mult


@app.command("record")
def record_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="capture file (or directory with rotation)"),
    duration: str = typer.Option(None, "-d", "--duration", help="stop after this long (30s, 5m, 1h)"),
    max_events: int = typer.Option(None, "-n", "--max-events", help="stop after this many events"),
    syscalls: str = typer.Option(
        None, "--syscalls",
        help="recorded set: names replace the default; +name adds, -name removes "
             "(e.g. '-close,+read'); 'default' names the default set",
    ),
    snaplen: int = typer.Option(0, "--snaplen", help="keep N bytes of read/write/send/recv payloads (adds read,write)"),
    pid: list[int] = typer.Option([], "--pid", help="only this process and its descendants (repeatable)"),
    comm: list[str] = typer.Option([], "--comm", help="only processes with this comm (repeatable)"),
    exclude_comm: list[str] = typer.Option([], "--exclude-comm", help="never these comms (repeatable)"),
    container: list[str] = typer.Option([], "--container", help="only this container (id prefix, repeatable)"),
    rotate_size: str = typer.Option(None, "--rotate-size", help="start a new segment after this size (e.g. 1G)"),
    rotate_seconds: str = typer.Option(None, "--rotate-seconds", help="start a new segment after this long"),
    no_shell: bool = typer.Option(False, "--no-shell", help="do not capture typed shell lines"),
    env: bool = typer.Option(False, "--env", help="include process environments in the start snapshot"),
    ring_mb: int = typer.Option(64, "--ring-mb", help="kernel ring buffer size in MiB"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="no status line"),
) -> None:
    """Record syscalls (exit-only, all parameters) to a self-contained Parquet capture."""
    from fcap.capture.filters import Filters
    from fcap.capture.recorder import RecordOptions, record
    from fcap.capture.syscalls import parse_syscalls

    if snaplen < 0:
        raise UsageError("--snaplen must be >= 0")
    if max_events is not None and max_events <= 0:
        raise UsageError("--max-events must be > 0")
    if ring_mb < 1 or ring_mb > 1024:
        raise UsageError("--ring-mb must be between 1 and 1024")
    rot_s = parse_duration(rotate_seconds)
    opts = RecordOptions(
        output=output,
        syscalls=parse_syscalls(syscalls, snaplen=snaplen),
        filters=Filters(tuple(pid), tuple(comm), tuple(exclude_comm), tuple(container)),
        snaplen=snaplen,
        duration=parse_duration(duration),
        max_events=max_events,
        rotate_bytes=parse_size(rotate_size),
        rotate_seconds=rot_s,
        quiet=quiet,
        shell=not no_shell,
        ring_mb=ring_mb,
        with_env=env,
        command=tuple(["fcap", *sys.argv[1:]]),
    )
    res = record(opts)
    if not quiet:
        files = ", ".join(str(f) for f in res.files) or "(nothing)"
        typer.echo(
            f"recorded {res.events:,} events in {res.elapsed_s:.1f}s to {files}; "
            f"drops {res.drops_total:,}", err=True,
        )
    if res.drops_total:
        typer.echo(f"fcap: warning: {res.drops_total:,} events were lost in the kernel "
                   f"(per CPU: {res.drops_per_cpu}); try a larger --ring-mb or narrower --syscalls",
                   err=True)
    if res.shell_lost:
        typer.echo(f"fcap: warning: {res.shell_lost:,} of those were typed-shell records the shell "
                   "probe's ring buffer could not take (counted in CPU 0's drops)", err=True)
