"""Write query results as a terminal table, CSV, JSON lines or Parquet.

* ``table``: for people. Columns sized to their content, each cut at
  ``max_col`` characters (an ellipsis marks the cut), the whole table fitted to
  the terminal width by shrinking the widest columns, NULL shown as ``NULL``,
  and at most ``max_rows`` rows with a line saying how many were left out.
* ``csv`` (RFC 4180, header row), ``json`` (JSON lines: one object per row),
  ``parquet``: for machines, exact. Every row is written; integers keep every
  digit; timestamps are written as DuckDB's text form with all nine
  fractional digits (``2026-11-22 20:01:02.123456789``); lists are JSON arrays
  (in CSV: their JSON text); bytes are hex.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import duckdb

from fcap.errors import UsageError

FORMATS = ("table", "csv", "json", "parquet")

#: Rows per batch when streaming a result out.
BATCH_ROWS = 10_000


def _exact(rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """Project timestamps to text (Python datetimes would lose the nanoseconds)."""
    exprs = []
    changed = False
    for name, typ in zip(rel.columns, rel.types, strict=True):
        quoted = '"' + name.replace('"', '""') + '"'
        if str(typ).startswith(("TIMESTAMP", "TIME", "DATE", "INTERVAL")):
            exprs.append(f"CAST({quoted} AS VARCHAR) AS {quoted}")
            changed = True
        else:
            exprs.append(quoted)
    return rel.project(", ".join(exprs)) if changed else rel


def iter_rows(rel: duckdb.DuckDBPyRelation) -> Iterator[tuple[Any, ...]]:
    """Every row of ``rel`` (timestamps as exact text), fetched in batches."""
    reader = _exact(rel).fetch_record_batch(BATCH_ROWS)
    names = rel.columns
    for batch in reader:
        cols = [batch.column(i).to_pylist() for i in range(len(names))]
        yield from zip(*cols, strict=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list):
        if value and isinstance(value[0], tuple) and len(value[0]) == 2:  # Arrow map
            return {str(k): _jsonable(v) for k, v in value}
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def _text(value: Any) -> str:
    """A value as one line of text for a table or a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, list | dict | tuple):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def write_csv(rel: duckdb.DuckDBPyRelation, out: TextIO) -> int:
    """Write ``rel`` as CSV with a header; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rel.columns)
    n = 0
    for row in iter_rows(rel):
        writer.writerow([_text(v) for v in row])
        n += 1
    return n


def write_json(rel: duckdb.DuckDBPyRelation, out: TextIO) -> int:
    """Write ``rel`` as JSON lines; returns the number of rows."""
    names = rel.columns
    n = 0
    for row in iter_rows(rel):
        obj = {k: _jsonable(v) for k, v in zip(names, row, strict=True)}
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        n += 1
    return n


def _cut(text: str, width: int) -> str:
    text = text.replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    max_col: int = 48,
    max_width: int | None = None,
) -> str:
    """A plain-text table of ``rows`` fitted to ``max_width`` (the terminal's by default)."""
    if max_width is None:
        max_width = shutil.get_terminal_size((160, 24)).columns
    cells = [["NULL" if v is None else _text(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], min(len(v.replace("\n", "\\n")), max_col))
    widths = [min(w, max_col) for w in widths]
    # Shrink the widest columns until the table fits (never below 6 characters).
    sep = 2
    while sum(widths) + sep * (len(widths) - 1) > max_width:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= 6:
            break
        widths[widest] -= 1
    lines = ["  ".join(_cut(c, w).ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(_cut(v, w).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def write_table(
    rel: duckdb.DuckDBPyRelation, out: TextIO, *, max_rows: int = 100, max_width: int | None = None
) -> int:
    """Write at most ``max_rows`` rows of ``rel`` as a readable table; returns rows shown."""
    shown: list[tuple[Any, ...]] = []
    extra = 0
    for row in iter_rows(rel.limit(max_rows + 1)):
        if len(shown) < max_rows:
            shown.append(row)
        else:
            extra = 1
    out.write(render_table(rel.columns, shown, max_width=max_width) + "\n")
    if extra:
        total = int(rel.aggregate("count(*)").fetchall()[0][0])
        out.write(
            f"({len(shown)} of {total} rows shown; use --max-rows, or --format csv/json for all)\n"
        )
    else:
        out.write(f"({len(shown)} row{'s' if len(shown) != 1 else ''})\n")
    return len(shown)


def write(
    rel: duckdb.DuckDBPyRelation,
    fmt: str,
    *,
    output: Path | None = None,
    stdout: TextIO | None = None,
    max_rows: int = 100,
) -> int:
    """Write ``rel`` in format ``fmt`` to ``output`` (a file) or ``stdout``; returns rows."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint="use one of " + ", ".join(FORMATS))
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs an output file", hint="add -o FILE.parquet")
        rel.write_parquet(str(output), compression="zstd")
        return int(rel.aggregate("count(*)").fetchall()[0][0])
    if output is not None:
        try:
            with output.open("w", encoding="utf-8", newline="") as fh:
                return _write_text(rel, fmt, fh, max_rows=max_rows, width=10_000)
        except OSError as err:
            raise UsageError(f"cannot write {output}: {err.strerror}") from None
    buf = stdout if stdout is not None else io.StringIO()
    return _write_text(rel, fmt, buf, max_rows=max_rows, width=None)


def _write_text(
    rel: duckdb.DuckDBPyRelation, fmt: str, out: TextIO, *, max_rows: int, width: int | None
) -> int:
    if fmt == "csv":
        return write_csv(rel, out)
    if fmt == "json":
        return write_json(rel, out)
    return write_table(rel, out, max_rows=max_rows, max_width=width)
