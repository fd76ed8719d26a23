"""``fcap sql`` and ``fcap hunt``: SQL and Falco conditions over captures.

Thin: both open the captures with :func:`fcap.api.open`, run the query or the
condition, and write the result with :mod:`fcap.analyze.hunt.formats`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fcap.cli import app
from fcap.errors import UsageError

_FORMAT_HELP = "table (for people), csv, json (JSON lines) or parquet (needs -o)"


def _split(args: list[str], file: Path | None, what: str) -> tuple[list[str], str, str]:
    """Captures, the query text, and its source name (for error locations)."""
    if file is not None:
        if not args:
            raise UsageError("no capture given", hint=f"fcap {what} CAPTURE... -f {file}")
        try:
            return args, file.read_text(encoding="utf-8"), str(file)
        except OSError as err:
            raise UsageError(f"{file}: cannot read the query file ({err.strerror})") from None
    if len(args) < 2:
        raise UsageError(
            f"give at least one capture and the {'query' if what == 'sql' else 'condition'}",
            hint=f"fcap {what} trace.parquet " + ('"SELECT ..."' if what == "sql" else "'proc.name = bash'"),
        )
    return args[:-1], args[-1], "<query>" if what == "sql" else "<condition>"


def _emit(result: object, fmt: str, output: Path | None, max_rows: int) -> None:
    from fcap.analyze.hunt import formats

    rel = result.relation  # type: ignore[attr-defined]
    formats.write(rel, fmt, output=output, stdout=sys.stdout, max_rows=max_rows)


_HOST_HELP = ("only the captures of this host (repeatable; the host= folder or the recorded "
              "hostname)")


@app.command("sql")
def sql_cmd(
    args: list[str] = typer.Argument(..., metavar="CAPTURE... [QUERY]",
                                     help="capture files/dirs/globs, then the SQL query"),
    file: Path | None = typer.Option(None, "-f", "--file", help="read the query from this file"),
    fmt: str = typer.Option("table", "--format", help=_FORMAT_HELP),
    output: Path | None = typer.Option(None, "-o", "--output", help="write to this file"),
    rules: list[Path] | None = typer.Option(None, "--rules", "-r",
                                            help="rules file or directory (repeatable): adds the alerts view"),
    max_rows: int = typer.Option(100, "--max-rows", help="table format: rows shown"),
    schema: bool = typer.Option(False, "--schema", help="list the views and their columns, then exit"),
    host: list[str] | None = typer.Option(None, "--host", help=_HOST_HELP),
) -> None:
    """Run DuckDB SQL over captures (views: events, processes, file_events, socket_events ...).

    Example: fcap sql trace.parquet "SELECT proc_name, count(*) FROM events GROUP BY 1"
    """
    import fcap.api
    from fcap.analyze.hunt.errors import QueryError

    if schema:
        _print_schema(args)
        return
    captures, query, source = _split(args, file, "sql")
    cap = fcap.api.open(captures, rules=rules or None, prepare=False, host=host or None)
    try:
        try:
            result = cap.sql(query)
        except QueryError as err:
            if err.location is not None and source != "<query>":
                loc = err.location
                err.location = type(loc)(source, loc.line, loc.col, loc.line_text, loc.length)
            raise
        if result is None:
            typer.echo("(no result)", err=True)
            return
        _emit(result, fmt, output, max_rows)
    finally:
        cap.close()


def _print_schema(captures: list[str]) -> None:
    """The views of the contract present in these captures, with their columns and types."""
    import fcap.api
    from fcap.analyze.hunt import contract

    if not captures:
        raise UsageError("no capture given", hint="fcap sql CAPTURE... --schema")
    cap = fcap.api.open(captures, prepare=False)
    try:
        present = set(cap.views())
        for view in contract.VIEWS:
            if view.name not in present:
                continue
            if view.name == "events":
                typer.echo("events: every Falco field as a column (docs/fields.md), e.g. "
                           + ", ".join(view.column_names()))
                continue
            cols = cap.con.execute(f"DESCRIBE {view.name}").fetchall()
            typer.echo(f"{view.name}: " + ", ".join(f"{c[0]} {c[1]}" for c in cols))
    finally:
        cap.close()


@app.command("hunt")
def hunt_cmd(
    args: list[str] = typer.Argument(..., metavar="CAPTURE... CONDITION",
                                     help="capture files/dirs/globs, then a Falco condition"),
    columns: str | None = typer.Option(
        None, "-c", "--columns", help="Falco fields to show, comma-separated (proc.cmdline,fd.name)"
    ),
    fmt: str = typer.Option("table", "--format", help=_FORMAT_HELP),
    output: Path | None = typer.Option(None, "-o", "--output", help="write to this file"),
    max_rows: int = typer.Option(100, "--max-rows", help="table format: rows shown"),
    host: list[str] | None = typer.Option(None, "--host", help=_HOST_HELP),
) -> None:
    """Events matching a Falco condition (compiled as `fcap replay` compiles rules).

    Example: fcap hunt trace.parquet 'proc.name = bash and fd.name startswith /etc' -c proc.cmdline,fd.name
    """
    import fcap.api

    captures, condition, _ = _split(args, None, "hunt")
    fields = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    cap = fcap.api.open(captures, prepare=False, host=host or None)
    try:
        result = cap.filter(condition, fields or list(fcap.api.DEFAULT_HUNT_FIELDS))
        _emit(result, fmt, output, max_rows)
    finally:
        cap.close()
