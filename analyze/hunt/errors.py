"""Turn DuckDB's exceptions into errors a person can act on.

A hunt's SQL is user input: a syntax error must point at the position (the
query line with a caret), an unknown view must list the views there are, an
unknown column the columns of the views the query names. DuckDB's own
messages hold most of this; :func:`translate` extracts it and returns a
:class:`QueryError` (a :class:`fcap.errors.SourceError`), which the CLI prints
without a traceback.
"""

from __future__ import annotations

import json
import re

import duckdb

from fcap.errors import SourceError, SourceLocation


class QueryError(SourceError):
    """A SQL query (or a hunt condition) that cannot run; points at the position."""

    exit_code = 2


#: Relations of a connection that are internal, never offered as suggestions.
_INTERNAL_PREFIXES = (
    "_fcap", "fc_", "fs_", "fcap_", "duckdb_", "pg_", "sqlite_", "information_schema",
)  # fmt: skip


def user_relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the views and tables a user may query in ``con``, sorted."""
    rows = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal "
        "UNION SELECT table_name FROM duckdb_tables() WHERE NOT internal"
    ).fetchall()
    from fcap.analyze.hunt.contract import VIEW_NAMES

    names = {r[0] for r in rows if not r[0].startswith(_INTERNAL_PREFIXES)}
    if "raw_events" in names:
        names.add("events")  # fcap.open builds it on first use
    order = {n: i for i, n in enumerate(VIEW_NAMES)}
    return sorted(names, key=lambda n: (n not in order, n.startswith("raw_"), order.get(n, 0), n))


def relation_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    """Column names of relation ``name`` in ``con`` (empty if there is none)."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
        [name],
    ).fetchall()
    if name == "events" and rows:
        # fcap.open shapes the view per query; its contract is every column
        from fcap.analyze.enrich import view_columns

        return view_columns()
    return [r[0] for r in rows]


def location_at(text: str, offset: int, *, source: str = "<query>", length: int = 1) -> SourceLocation:
    """The :class:`SourceLocation` of character ``offset`` (0-based) in ``text``."""
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)
    line_no = text.count("\n", 0, offset) + 1
    line_text = text[line_start:line_end]
    length = max(1, min(length, max(1, len(line_text) - (offset - line_start))))
    return SourceLocation(source, line_no, offset - line_start + 1, line_text, length)


def _parser_position(query: str) -> tuple[int | None, str | None]:
    """Re-parse ``query`` with JSON errors to get DuckDB's character position of the error."""
    probe = duckdb.connect()
    try:
        probe.execute("SET errors_as_json = true")
        probe.extract_statements(query)
    except duckdb.Error as err:
        text = str(err)
        brace = text.find("{")
        if brace >= 0:
            try:
                info = json.loads(text[brace:])
            except ValueError:
                return None, None
            pos = info.get("position")
            return (int(pos) if pos is not None else None), info.get("exception_message")
    finally:
        probe.close()
    return None, None


def _find_identifier(query: str, name: str) -> int | None:
    """Offset of the first use of identifier ``name`` outside string literals, or None."""
    pattern = re.compile(r"'(?:[^']|'')*'|\"?\b" + re.escape(name) + r"\b\"?", re.IGNORECASE)
    for m in pattern.finditer(query):
        if not m.group(0).startswith("'"):
            return m.start() + (1 if m.group(0).startswith('"') else 0)
    return None


def _mentioned_views(query: str, names: list[str]) -> list[str]:
    low = query.lower()
    return [n for n in names if re.search(r"\b" + re.escape(n.lower()) + r"\b", low)]


def _first_line(err: Exception) -> str:
    text = str(err)
    text = re.sub(r"^[A-Za-z ]+ Error: ", "", text)
    return text.split("\n")[0].strip()


def _shorten(names: list[str], limit: int = 40) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def translate(
    err: duckdb.Error,
    query: str,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    source: str = "<query>",
) -> QueryError:
    """A :class:`QueryError` for DuckDB error ``err`` raised by ``query``."""
    text = str(err)
    if isinstance(err, duckdb.ParserException):
        pos, message = _parser_position(query)
        message = message or _first_line(err)
        loc = location_at(query, pos, source=source) if pos is not None else None
        return QueryError(f"SQL syntax error: {message}", loc)

    relations = user_relations(con) if con is not None else []
    m = re.search(r"Table with name (\S+) does not exist", text)
    if m:
        name = m.group(1)
        pos = _find_identifier(query, name)
        loc = location_at(query, pos, source=source, length=len(name)) if pos is not None else None
        return QueryError(f"unknown view {name!r}", loc, hint=f"views: {_shorten(relations)}")

    m = re.search(
        r'Referenced column "([^"]+)" not found|does not have a column named "([^"]+)"'
        r'|Column "([^"]+)" does not exist',
        text,
    )
    if m:
        name = next(g for g in m.groups() if g)
        pos = _find_identifier(query, name)
        loc = location_at(query, pos, source=source, length=len(name)) if pos is not None else None
        hint = None
        if con is not None:
            parts = []
            for view_name in _mentioned_views(query, relations):
                cols = relation_columns(con, view_name)
                parts.append(f"{view_name}: {_shorten(cols)}")
            hint = "columns of " + "; ".join(parts) if parts else None
        if hint is None:
            cand = re.search(r"Candidate bindings: :? ?(.*)", text)
            hint = f"candidates: {cand.group(1)}" if cand else None
        return QueryError(f"unknown column {name!r}", loc, hint=hint)

    m = re.search(r'Referenced table "([^"]+)" not found', text)
    if m:
        name = m.group(1)
        pos = _find_identifier(query, name)
        loc = location_at(query, pos, source=source, length=len(name)) if pos is not None else None
        return QueryError(f"unknown table alias {name!r}", loc)

    m = re.search(r'Function with name (\S+) does not exist!(?:\s*Did you mean "([^"]+)")?', text)
    if m:
        name = m.group(1)
        pos = _find_identifier(query, name)
        loc = location_at(query, pos, source=source, length=len(name)) if pos is not None else None
        hint = f'did you mean "{m.group(2)}"?' if m.group(2) else None
        return QueryError(f"unknown function {name!r}", loc, hint=hint)

    return QueryError(f"query failed: {_first_line(err)}")
