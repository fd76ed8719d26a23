"""``fcap sessions``: interactive shell sessions and what each typed command did."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fcap.cli import app


@app.command("sessions")
def sessions_cmd(
    capture: list[Path] = typer.Argument(
        ..., help="Capture file(s), a rotated directory or a glob."
    ),
    session_id: int = typer.Option(
        None, "--id", help="Print the transcript of session N (commands with their effects)."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
) -> None:
    """List the shell sessions in a capture, or print one session's transcript."""
    import duckdb

    from fcap.analyze.sessions import list_sessions, transcript
    from fcap.analyze.sessions.render import sessions_table, to_json, transcript_text
    from fcap.capture.reader import open_capture

    cap = open_capture([str(p) for p in capture] if len(capture) > 1 else capture[0])
    con = duckdb.connect()
    cap.attach(con)
    if session_id is None:
        sessions = list_sessions(con)
        if as_json:
            typer.echo(json.dumps(to_json(sessions), indent=2))
        elif not sessions:
            typer.echo("no shell sessions in this capture (no shell_line rows)")
        else:
            typer.echo(sessions_table(sessions))
        return
    t = transcript(con, session_id)
    typer.echo(json.dumps(to_json(t), indent=2) if as_json else transcript_text(t))
