"""``fcap replay``: a capture through Falco rules, printing Falco's alerts."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from fcap.analyze.compile.load import load_and_compile
from fcap.cli import app
from fcap.errors import CaptureError, FcapError, UsageError


def bundled_rules_dir() -> Path:
    """The bundled default rules (package data ``fcap.rules``)."""
    from fcap.analyze.regress.runner import bundled_rules_dir as _rules_dir

    return _rules_dir()


def default_captures() -> list[Path]:
    """What ``fcap replay`` reads without a capture argument: the bundled sample."""
    from fcap.analyze.regress.samples import default_capture

    path = default_capture()
    if not path.is_file():
        raise CaptureError(
            f"the bundled sample capture {path} is missing",
            hint="give a capture: fcap replay CAPTURE.parquet",
        )
    return [path]


def rule_warnings(ruleset: object, compiled: object) -> list[object]:
    """The loader's and the compiler's warnings; the compiler's identical warnings at one
    location (a macro shared by several rules) are merged into one naming the rules."""
    from fcap.analyze.compile.diagnostics import merge_repeated

    return [*ruleset.warnings, *merge_repeated(compiled.warnings)]  # type: ignore[attr-defined]


@app.command("replay")
def replay_cmd(
    captures: list[Path] = typer.Argument(
        None, help="Capture files, rotated directories or globs (default: the bundled sample)."
    ),
    rules: list[Path] = typer.Option(
        [], "--rules", "-r", help="Rules file or directory, repeatable, in order "
        "(default: the bundled rules/)."
    ),
    min_priority: str = typer.Option(
        None, "-p", "--min-priority", help="Only rules at least this severe (e.g. warning)."
    ),
    tag: list[str] = typer.Option([], "-t", "--tag", help="Only rules with this tag (repeatable)."),
    exclude_tag: list[str] = typer.Option(
        [], "-T", "--exclude-tag", help="Disable rules with this tag (repeatable)."
    ),
    disable: list[str] = typer.Option(
        [], "-D", "--disable", help="Disable rules by name substring or wildcard (repeatable)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Falco's JSON alert objects."),
    output: Path = typer.Option(None, "-o", "--output", help="Write alerts to FILE."),
    rule_matching: str = typer.Option(
        "first", "--rule-matching", help="first (Falco's default: first match per event) or all."
    ),
    time_format: str = typer.Option(
        "local", "--time-format", help="local (HH:MM:SS.nnnnnnnnn) or iso8601."
    ),
    threads: int = typer.Option(None, "--threads", help="DuckDB threads (default: all cores)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No summary on stderr."),
    host: list[str] = typer.Option(
        [], "--host", help="Only the captures of this host (repeatable; default: every host, "
        "each replayed on its own)."
    ),
) -> None:
    """Replay captures through Falco rules: one line per alert, a summary on stderr.

    Exit code 0 whether or not there are alerts; non-zero only for errors.
    """
    from fcap.analyze.engine import ReplayStats, replay, select_rules
    from fcap.analyze.output import AlertWriter, summary_text

    if rule_matching not in ("first", "all"):
        raise UsageError(f"--rule-matching must be 'first' or 'all', not {rule_matching!r}")
    if time_format not in ("local", "iso8601"):
        raise UsageError(f"--time-format must be 'local' or 'iso8601', not {time_format!r}")
    prio = None
    if min_priority:
        from fcap.analyze.rules import Priority

        try:
            prio = Priority.parse(min_priority)
        except Exception as err:
            raise UsageError(f"unknown priority {min_priority!r}", hint=str(err)) from None
    paths: object = list(captures) if captures else default_captures()
    if host:
        from fcap.capture.reader import open_capture

        paths = open_capture(paths).select_hosts(host)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    ruleset, compiled = load_and_compile(list(rules) or [bundled_rules_dir()])
    if not quiet:  # as Falco >= 0.37 (load_rules_files.cpp): every warning, at load time
        for w in rule_warnings(ruleset, compiled):
            print(f"fcap: {w}", file=sys.stderr)
    compiled = select_rules(compiled, min_priority=prio, tags=tag, exclude_tags=exclude_tag,
                            disable=disable)  # type: ignore[arg-type]
    import duckdb

    stats = ReplayStats()
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        writer = AlertWriter(out, json_output=json_output, iso8601=time_format == "iso8601")
        t1 = time.perf_counter()
        for alert in replay(paths, compiled, rule_matching=rule_matching, threads=threads,
                            stats=stats):
            writer.write(alert)
        elapsed = time.perf_counter() - t1
    except duckdb.Error as err:
        raise FcapError(f"replay failed in DuckDB: {str(err).splitlines()[0]}",
                        hint="please report this with `fcap rules explain` of your rules") from None
    finally:
        if output:
            out.close()
    if not quiet:
        print(summary_text(stats, seconds=elapsed), file=sys.stderr)
        print(f"Rules loaded and compiled in {t1 - t0:.2f}s", file=sys.stderr)
