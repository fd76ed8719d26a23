"""``fcap info`` (what a capture holds) and ``fcap repair`` (finalize a crashed recording)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from fcap.cli import app


@app.command("info")
def info_cmd(
    captures: list[str] = typer.Argument(..., metavar="CAPTURE...",
                                         help="capture files, rotated directories, globs or journals"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    top: int = typer.Option(0, "--top", help="show only the N most frequent event types (0 = all)"),
) -> None:
    """Show a capture's host, time span, events by type, processes, containers and drops."""
    from fcap.capture.reader import open_capture
    from fcap.capture.summary import drops_warning, render, summarize

    cap = open_capture(captures)
    s = summarize(cap, top=top or None)
    if as_json:
        typer.echo(json.dumps(s, indent=2, sort_keys=True))
    else:
        typer.echo(render(s))
    warning = drops_warning(s)
    if warning:
        print(f"fcap: {warning}", file=sys.stderr)


@app.command("repair")
def repair_cmd(
    path: Path = typer.Argument(..., help="the -o path of the crashed recording, its .partial "
                                          "journal, or a rotated output directory"),
) -> None:
    """Finalize the journal a crashed or killed recording left (marked complete=false)."""
    from fcap.capture.reader import open_capture
    from fcap.capture.repair import repair

    for out in repair(path):
        n = open_capture(out).num_events
        typer.echo(f"repaired {out}: {n:,} events kept")
