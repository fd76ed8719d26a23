"""``fcap test``, ``fcap diff`` and ``fcap samples``: regression tests of rules on captures."""

from __future__ import annotations

from pathlib import Path

import typer

from fcap.cli import app
from fcap.errors import UsageError

samples_app = typer.Typer(
    help="The bundled sample captures: list them, re-record one and compare.",
    no_args_is_help=True,
)
app.add_typer(samples_app, name="samples")


@app.command("test")
def test_cmd(
    paths: list[Path] = typer.Argument(
        None, help="*.fcap.yaml files or directories (default: the bundled samples)."
    ),
    capture_dir: list[Path] = typer.Option(
        [], "--capture-dir", help="Extra directory searched for captures named by sha256."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also print passing tests."),
) -> None:
    """Run regression tests (*.fcap.yaml): replay each capture, compare the alerts.

    Prints a diff for every failing test (- missing expected alert,
    + unexpected alert) and exits 1 when any test fails.
    """
    from fcap.analyze.regress.diff import render_result, render_summary
    from fcap.analyze.regress.runner import Runner, bundled_samples_dir, run_paths

    targets = list(paths or [bundled_samples_dir()])
    runner = Runner(capture_dirs=tuple(capture_dir))
    results = []
    for result in run_paths(targets, runner):
        results.append(result)
        if verbose or not result.ok:
            typer.echo(render_result(result))
    if not results:
        raise UsageError(f"no *.fcap.yaml tests found in {', '.join(map(str, targets))}")
    typer.echo(render_summary(results))
    if any(not r.ok for r in results):
        raise typer.Exit(1)


@app.command("diff")
def diff_cmd(
    captures: list[Path] = typer.Argument(..., help="Capture files to replay."),
    rules: list[Path] = typer.Option(
        ..., "--rules", "-r", help="The current rules (repeatable, in order)."
    ),
    rules_new: list[Path] = typer.Option(
        ..., "--rules-new", "-n", help="The changed rules (repeatable, in order)."
    ),
    rule_matching: str = typer.Option("first", help="first (Falco's default) or all."),
    exit_code: bool = typer.Option(
        False, "--exit-code", help="Exit 1 when the change adds or removes any alert."
    ),
) -> None:
    """Which alerts a rule change adds (+), removes (-) or changes (~), per capture."""
    from fcap.analyze.regress.alerts import Alert
    from fcap.analyze.regress.diff import alert_change, render_change
    from fcap.analyze.regress.runner import Runner

    if rule_matching not in ("first", "all"):
        raise UsageError("--rule-matching must be 'first' or 'all'")
    for p in [*rules, *rules_new]:
        if not p.exists():
            raise UsageError(f"rules file {p} not found")
    runner = Runner()
    changed = False
    for cap in captures:
        files = runner.resolve_path(cap)
        old = [Alert.from_json(a) for a in runner.alerts(files, rules, rule_matching)]
        new = [Alert.from_json(a) for a in runner.alerts(files, rules_new, rule_matching)]
        change = alert_change(cap, old, new)
        changed |= bool(change.added or change.removed or change.changed)
        typer.echo(render_change(change))
    if exit_code and changed:
        raise typer.Exit(1)


@samples_app.command("list")
def samples_list() -> None:
    """List the bundled samples with their capture size and expected alert count."""
    from fcap.analyze.regress.samples import list_samples

    for s in list_samples():
        typer.echo(
            f"{s.name:24} {s.capture_bytes / 1024:8.1f} KiB  {s.expected_count:3} alert(s)  "
            f"{s.title}"
        )


@samples_app.command("record")
def samples_record(
    name: str = typer.Argument(..., help="Sample directory name under samples/."),
    update: bool = typer.Option(
        False, "--update", help="Replace the committed capture, expected.jsonl and sha256."
    ),
    keep: Path | None = typer.Option(None, "--keep", help="Also copy the new capture here."),
) -> None:
    """Re-run a sample's scenario under `fcap record` and compare with the committed alerts.

    Needs root, bcc and (for container scenarios) runc. Times, pids and
    ephemeral ports differ between recordings, so the comparison is by rule and
    the fields that survive a re-run (process, executable, file, listening
    port, container and pod names), plus the test's own alerts: entries.
    """
    from fcap.analyze.regress.samples import rerecord

    report = rerecord(name, update=update, keep=keep)
    typer.echo(report.text)
    if not report.same and not update:
        raise typer.Exit(1)


@samples_app.command("expect")
def samples_expect(
    name: str = typer.Argument(..., help="Sample directory name under samples/."),
) -> None:
    """Rewrite a sample's expected.jsonl from its committed capture (after a deliberate rule change)."""
    from fcap.analyze.regress.samples import write_expected

    n = write_expected(name)
    typer.echo(f"wrote {n} alert(s) to samples/{name}/expected.jsonl; review with git diff")
