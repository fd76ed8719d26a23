"""The ``fcap`` command: a thin typer layer over the library.

Each subcommand group lives in its own module of this package and registers
itself on :data:`app`; this module only assembles them and turns
:class:`fcap.errors.FcapError` into a one-line message and an exit code.
"""

from __future__ import annotations

import sys

import typer

from fcap.errors import FcapError

app = typer.Typer(
    name="fcap",
    help="Record syscalls with eBPF into Parquet captures; replay them through Falco rules; hunt with SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """fcap: record syscalls to Parquet with eBPF; replay them through Falco rules; hunt with SQL."""


def _register() -> None:
    """Import every module of this package; each adds its commands to ``app``."""
    import importlib
    import pkgutil

    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """Library warnings on the command line: one line, no source location."""
    print(f"fcap: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fcap`` console script."""
    import warnings

    warnings.showwarning = _show_warning
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except FcapError as err:
        print(f"fcap: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


@app.command("version")
def version_cmd() -> None:
    """Print fcap's version and the capture schema version it writes."""
    from fcap import __version__
    from fcap.schema import SCHEMA_VERSION

    typer.echo(f"fcap {__version__} (capture schema {SCHEMA_VERSION})")
