"""``fcap rules validate|list|explain``: check and inspect Falco rules files."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fcap.cli import app
from fcap.errors import UsageError

rules_app = typer.Typer(help="Validate, list and explain Falco rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


def _load(paths: list[Path]):
    from fcap.analyze.compile import compile_ruleset
    from fcap.analyze.rules import load_rules

    for p in paths:
        if not p.exists():
            raise UsageError(f"rules file or directory {p} not found")
    ruleset = load_rules([str(p) for p in paths])
    return ruleset, compile_ruleset(ruleset)


def _default(paths: list[Path] | None) -> list[Path]:
    from fcap.cli.replay import bundled_rules_dir

    return list(paths) if paths else [bundled_rules_dir()]


@rules_app.command("validate")
def validate_cmd(
    paths: list[Path] = typer.Argument(..., help="Rules files or directories, in order."),
) -> None:
    """Like ``falco -V``: print every error and warning (file:line:col, caret, hint).

    Exit code 1 when there is any error, 0 otherwise (warnings allowed).
    """
    from fcap.analyze.compile.diagnostics import merge_repeated

    ruleset, compiled = _load(list(paths))
    diags = [*ruleset.diagnostics, *merge_repeated(compiled.diagnostics)]
    for d in diags:
        typer.echo(str(d))
    for r in compiled.rules:
        if r.unsupported_fields:
            typer.echo(f"note: rule '{r.name}' uses fields fcap does not provide (always "
                       f"missing): {', '.join(r.unsupported_fields)}")
    n_err = len(ruleset.errors) + len(compiled.errors)
    n_warn = len(diags) - n_err
    ok = "ok" if not n_err else "invalid"
    typer.echo(
        f"{', '.join(map(str, paths))}: {ok} ({len(compiled.rules)} rules compiled, "
        f"{n_err} error(s), {n_warn} warning(s))"
    )
    if n_err:
        raise typer.Exit(1)


@rules_app.command("list")
def list_cmd(
    paths: list[Path] = typer.Argument(None, help="Rules files or dirs (default: bundled)."),
) -> None:
    """Every rule in evaluation order: enabled flag, priority, name, tags."""
    from fcap.analyze.output.format import priority_name

    ruleset, compiled = _load(_default(paths))
    ok = {r.name for r in compiled.rules}
    for r in ruleset.rules:
        state = ("on " if r.enabled else "off") if r.name in ok else "ERR"
        tags = ",".join(sorted(r.tags))
        typer.echo(f"{state}  {priority_name(r.priority):<13} {r.name}  [{tags}]")


@rules_app.command("explain")
def explain_cmd(
    name: str = typer.Argument(..., help="Rule name."),
    rules: list[Path] = typer.Option([], "--rules", "-r", help="Rules files or dirs."),
) -> None:
    """A rule's condition (after list substitution, then with macros expanded), its event
    types, output and generated SQL."""
    ruleset, compiled = _load(_default(rules))
    try:
        rule = ruleset.rule(name)
    except KeyError:
        raise UsageError(f"no rule named {name!r}") from None
    typer.echo(f"rule: {rule.name}")
    if getattr(rule, "location", None):
        typer.echo(f"defined at: {rule.location}")
    from fcap.analyze.condition.printer import to_string

    typer.echo(f"condition (lists substituted):\n    {rule.condition_text}")
    typer.echo(f"condition (macros expanded):\n    {to_string(rule.condition)}")
    try:
        c = compiled.rule(name)
    except KeyError:
        for d in compiled.diagnostics:
            if d.rule == name:
                typer.echo(str(d), err=True)
        sys.exit(1)
    types = "all" if c.event_types is None else " ".join(sorted(c.event_types))
    typer.echo(f"event types: {types}")
    if c.unsupported_fields:
        typer.echo(f"fields fcap does not provide (always missing): {', '.join(c.unsupported_fields)}")
    typer.echo(f"output:\n    {c.output}")
    typer.echo(f"sql:\n    {c.sql}")
