"""The public Python API: ``fcap.open(paths, rules=None) -> Capture``.

>>> import fcap
>>> cap = fcap.open("trace.parquet")                        # doctest: +SKIP
>>> cap.file_events.filter("path = '/etc/shadow'")          # doctest: +SKIP
>>> cap.sql("SELECT proc_name, count(*) FROM events GROUP BY 1").df()   # doctest: +SKIP
>>> cap.filter("proc.name = bash and fd.name startswith /etc")          # doctest: +SKIP

Opening reads only the captures' footers and the small side tables; the
events stay in the Parquet files and every view is lazy (only the lifecycle
rows and the table of process images are materialized). The enriched
``events`` relation is built the first time a query uses it. Several captures open as one: a list, a
glob, a directory of rotated segments, or a hive tree (``host=.../date=...``),
with a ``host`` column telling them apart.

Results are :class:`fcap.analyze.hunt.result.Result` objects: DuckDB
relations (``.df()`` with the optional pandas, ``.pl()`` with the optional
polars, ``.to_arrow_table()``, ``.fetchall()``, ``.filter()`` ...) that show
their schema, row count and first rows in a terminal and in Jupyter. Nothing
here needs root or bcc.
"""

from __future__ import annotations

import contextlib
import html
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from fcap.analyze.hunt import contract
from fcap.analyze.hunt.errors import QueryError, translate, user_relations
from fcap.analyze.hunt.result import Result
from fcap.analyze.hunt.views import create_views
from fcap.analyze.state.hosts import MAX_HOSTS
from fcap.errors import CaptureError, FcapError, UsageError

PathsLike = str | Path | Sequence[str | Path]

#: Falco fields shown by :meth:`Capture.filter` and ``fcap hunt`` when no columns are chosen.
DEFAULT_HUNT_FIELDS = (
    "evt.time",
    "evt.type",
    "proc.name",
    "proc.pid",
    "proc.cmdline",
    "fd.name",
    "user.name",
    "container.id",
)


# -- the other helpers' modules, imported where they are used (hooks for tests) ----------
def _open_capture(paths: PathsLike) -> Any:
    from fcap.capture.reader import open_capture

    return open_capture(paths)


def _build_events(con: duckdb.DuckDBPyConnection, fields: Sequence[str] | None) -> None:
    """(Re)create the ``events`` view with ``fields`` (None: every field column)."""
    try:
        from fcap.analyze.enrich import build_view
    except ImportError as err:
        raise FcapError(
            "the enriched events relation (fcap.analyze.enrich) is not available in this build",
            hint=str(err),
        ) from None
    build_view(con, "events", fields)


def _prepare_events(con: duckdb.DuckDBPyConnection) -> None:
    """Build the events view's state tables now; a failure is left to the first query
    over ``events``, which reports it (the other views work without them)."""
    from fcap.analyze.enrich import prepare

    # the first query over events runs prepare again and reports its error
    with contextlib.suppress(Exception):
        prepare(con)


def _query_fields(query: str) -> list[str] | None:
    from fcap.analyze.enrich import query_fields

    return query_fields(query)


def _compile_condition(text: str) -> str:
    try:
        from fcap.analyze.compile import compile_condition
    except ImportError as err:
        raise FcapError(
            "the condition compiler (fcap.analyze.compile) is not available in this build",
            hint=str(err),
        ) from None
    return compile_condition(text)


def _field_sql(name: str) -> str:
    """The SQL expression (over alias ``e``) of Falco field ``name``, via the field catalog."""
    from fcap.analyze.fields.catalog import lookup

    base, arg = name, None
    if name.endswith("]") and "[" in name:
        base, arg = name[:-1].split("[", 1)
    return lookup(base, arg).sql


def _load_alerts(con: duckdb.DuckDBPyConnection, rules: Any) -> None:
    """Run Falco rules over the capture with the replay engine; create the ``alerts`` table.

    Over captures of several hosts each alert names its event's host (the
    connection keeps the hosts' state apart, see :mod:`fcap.analyze.state.hosts`).
    """
    from fcap.analyze.compile.load import load_and_compile
    from fcap.analyze.engine import alerts_table, replay
    from fcap.analyze.enrich import prepare

    paths = [rules] if isinstance(rules, str | Path) else list(rules)
    _, compiled = load_and_compile(paths)
    prepare(con)
    table = alerts_table(replay(con, compiled))
    con.register("_fcap_alerts_arrow", table)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE alerts AS SELECT ts, make_timestamp_ns(ts) AS time, "
        "evt_num, rule, priority, source, tags, output, hostname, "
        "CAST(output_fields AS JSON) AS output_fields FROM _fcap_alerts_arrow"
    )
    con.unregister("_fcap_alerts_arrow")


def _check_paths(paths: PathsLike) -> None:
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise UsageError("no capture given", hint="pass a file, a directory, a glob or a list")
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?[") or Path(item).exists():
            continue
        if Path(text + ".partial").exists():
            continue
        raise CaptureError(f"{text}: no such file or directory")


def open(paths: PathsLike, rules: Any = None, *, prepare: bool = True,
         host: str | Sequence[str] | None = None) -> Capture:
    """Open captures for hunting.

    ``paths``: a capture file, a directory of segments, a hive tree, a glob, or
    a list of them. ``rules``: optional Falco rule files (a path or a list of
    paths); the ``alerts`` view then holds their matches. ``prepare``: build the
    small state tables of the enriched ``events`` view now (process chains,
    users, containers: their size follows the processes, not the events; ~1-2 s
    on 10 million events), so that the first query over ``events`` does not
    wait for them; False builds them on first use (``fcap sql`` runs one query).
    ``host``: only the captures of this host (or these hosts; the ``host`` column's
    values: the ``host=`` folder, else the recorded hostname), e.g. one node of a hive
    tree. Captures of several hosts are fine together: the events view keeps each
    host's process and descriptor state apart (see docs/hunting.md).
    Raises :class:`fcap.errors.CaptureError` naming a missing or foreign file, or a
    host with no capture.
    """
    _check_paths(paths)
    raw = _open_capture(paths)
    if host is not None:
        raw = raw.select_hosts([host] if isinstance(host, str) else list(host))
    if len(raw.hosts) >= MAX_HOSTS:  # the events view keeps up to 511 hosts apart
        warnings.warn(
            f"captures of {len(raw.hosts)} hosts: the events view keeps the process and "
            f"descriptor state of at most {MAX_HOSTS - 1} hosts apart, beyond that it "
            "mixes hosts whose pids collide; open fewer hosts at a time (host=, --host) "
            "for proc.* and fd.* fields", UserWarning, stacklevel=2)
    con = duckdb.connect()
    try:
        raw.attach(con)
        create_views(con)
    except duckdb.Error as err:
        con.close()
        raise CaptureError(f"cannot read the capture: {str(err).splitlines()[0]}") from None
    except BaseException:
        con.close()
        raise
    if prepare:
        _prepare_events(con)
    cap = Capture(con, raw, rules)
    if rules is not None:
        try:
            _load_alerts(con, rules)
        except BaseException:
            con.close()
            raise
    return cap


class Capture:
    """Captures opened for hunting: the views as attributes, SQL, Falco conditions, alerts."""

    def __init__(self, con: duckdb.DuckDBPyConnection, raw: Any, rules: Any = None) -> None:
        self.con = con
        self.raw = raw
        self.rules = rules
        self._events_built = False
        #: the field columns the ``events`` view has (None: all of them)
        self._event_fields: set[str] | None = set()

    def _ensure_events(self, fields: Sequence[str] | None = None) -> None:
        """Give the ``events`` view (at least) ``fields``; None: every field column.

        Opening stays cheap (the other views read the capture directly). The
        view is shaped by the queries: it has the field columns queries named so
        far (it only grows, so views a user made over it keep working), and only
        the joins and per-row state those columns need (docs/hunting.md).
        """
        have = self._event_fields
        if self._events_built and (have is None or (fields is not None and have >= set(fields))):
            return
        want = None if fields is None or have is None else have | set(fields)
        try:
            _build_events(self.con, None if want is None else sorted(want))
        except duckdb.Error as err:
            raise CaptureError(
                f"cannot build the events relation: {str(err).splitlines()[0]}"
            ) from None
        self._event_fields = want
        self._events_built = True

    def _run(self, query: str, params: Any = None, *, source: str = "<query>") -> Any:
        """``con.sql`` shaping ``events`` for the query; DuckDB errors become QueryError."""
        if re.search(r"\bevents\b", query, re.IGNORECASE):
            self._ensure_events(_query_fields(query))
        for attempt in (0, 1):
            try:
                return self.con.sql(query, params=params)
            except duckdb.CatalogException as err:
                missing = re.search(r"Table with name (\w+) does not exist", str(err))
                if attempt == 0 and missing and missing.group(1).lower() == "events":
                    self._ensure_events()
                    continue
                raise translate(err, query, self.con, source=source) from None
            except duckdb.Error as err:
                raise translate(err, query, self.con, source=source) from None
        raise AssertionError("unreachable")

    # -- identity ------------------------------------------------------------
    @property
    def paths(self) -> tuple[Path, ...]:
        """The capture files read."""
        return tuple(self.raw.paths)

    @property
    def hosts(self) -> list[str]:
        """The hosts of the captures."""
        return [r[0] for r in self.con.execute("SELECT DISTINCT host FROM raw_meta ORDER BY 1").fetchall()]

    @property
    def views_version(self) -> str:
        """Version of the view contract (see docs/hunting.md)."""
        return contract.VIEWS_VERSION

    def views(self) -> list[str]:
        """Names of the views and tables that can be queried."""
        return user_relations(self.con)

    # -- queries -------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Result | None:
        """Run ``query`` (DuckDB SQL over the views); ``params`` fill ``?`` or ``$name``.

        Returns the result, lazily evaluated; None for a statement without one
        (``CREATE VIEW my_hunt AS ...`` adds a view for later queries).
        """
        rel = self._run(query, params)
        return None if rel is None else Result(rel)

    def view(self, name: str) -> Result:
        """View ``name`` as a result; an unknown name lists the valid ones."""
        names = self.views()
        if name not in names:
            raise QueryError(f"unknown view {name!r}", hint="views: " + ", ".join(names))
        if name == "events":
            self._ensure_events()
        return Result(self.con.table(name))

    def filter(self, condition: str, columns: Sequence[str] | None = None) -> Result:
        """Events matching a Falco condition, compiled by the rule compiler.

        ``columns``: Falco field names to show (``proc.cmdline``, ``fd.name`` ...);
        by default all columns of ``events``.
        """
        predicate = _compile_condition(condition)
        select = ", ".join(f'{_field_sql(c)} AS "{c}"' for c in columns) if columns else "e.*"
        query = f"SELECT {select} FROM events e WHERE {predicate} ORDER BY e.evt_num"
        return Result(self._run(query))

    def alerts(self) -> Result:
        """The rule matches (needs ``rules=`` when opening)."""
        if self.rules is None:
            raise UsageError("no rules were given", hint="fcap.open(paths, rules='rules.yaml')")
        return Result(self.con.table("alerts"))

    # -- views as attributes -------------------------------------------------
    @property
    def events(self) -> Result:
        """Every event with the Falco fields as columns (docs/fields.md)."""
        return self.view("events")

    @property
    def processes(self) -> Result:
        """One row per process image."""
        return self.view("processes")

    @property
    def process_events(self) -> Result:
        """Execs, forks and exits."""
        return self.view("process_events")

    @property
    def file_events(self) -> Result:
        """Opens, renames, unlinks, chmods ... with path and access mode."""
        return self.view("file_events")

    @property
    def socket_events(self) -> Result:
        """Connects, accepts, binds, listens with addresses."""
        return self.view("socket_events")

    @property
    def containers(self) -> Result:
        """The containers seen."""
        return self.view("containers")

    @property
    def users(self) -> Result:
        """User accounts of the host and the containers."""
        return self.view("users")

    @property
    def shell_commands(self) -> Result:
        """Lines typed in interactive shells."""
        return self.view("shell_commands")

    @property
    def sessions(self) -> Result:
        """Interactive shell sessions (when the sessions module is installed)."""
        return self.view("sessions")

    # -- lifecycle and display -----------------------------------------------
    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _summary(self) -> tuple[int, list[str], list[str]]:
        n = sum(int(m.get("events_written") or 0) for m in self.raw.meta) or int(
            getattr(self.raw, "num_events", 0)
        )
        return n, self.hosts, self.views()

    def __repr__(self) -> str:
        n, hosts, views = self._summary()
        return (
            f"<fcap.Capture {len(self.paths)} file(s), hosts {', '.join(hosts)}, {n} events; "
            f"views (contract {contract.VIEWS_VERSION}): {', '.join(views)}>"
        )

    def _repr_html_(self) -> str:
        n, hosts, views = self._summary()
        esc = html.escape
        items = "".join(f"<li><code>{esc(v)}</code></li>" for v in views)
        return (
            f"<p><b>fcap capture</b>: {len(self.paths)} file(s), hosts "
            f"{esc(', '.join(hosts))}, {n} events</p>"
            f"<p>views (contract {contract.VIEWS_VERSION}):</p><ul>{items}</ul>"
        )


__all__ = ["Capture", "open"]
