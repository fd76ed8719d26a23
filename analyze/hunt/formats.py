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
    reader = _exact(rel).to_arrow_reader(BATCH_ROWS)
    names = rel.columns
    for batch in reader:
        cols = [_pylist(batch.column(i)) for i in range(len(names))]
        yield from zip(*cols, strict=True)


def _pylist(array: Any) -> list[Any]:
    """Python values of an Arrow column; maps become dicts (also when empty)."""
    import pyarrow as pa

    values = array.to_pylist()
    if pa.types.is_map(array.type):
        return [None if v is None else dict(v) for v in values]
    return values


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list):
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
    """A plain-text table of ``rows`` fitted to ``max_width`` (the terminal's by default).

    Columns are sized to their content (at most ``max_col``). When they do not fit, the
    widest are narrowed, but never below their header (or 8 characters); if the table
    is still too wide, columns are left out from the middle and a ``…`` column marks
    where, as DuckDB's shell does.
    """
    if max_width is None:
        max_width = shutil.get_terminal_size((160, 24)).columns
    columns = list(columns)
    cells = [["NULL" if v is None else _text(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], min(len(v.replace("\n", "\\n")), max_col))
    widths = [min(w, max_col) for w in widths]
    floor = [min(w, max(len(c), 8)) for w, c in zip(widths, columns, strict=True)]

    def total(ws: list[int]) -> int:
        return sum(ws) + 2 * (len(ws) - 1)

    while total(widths) > max_width:
        shrinkable = [i for i in range(len(widths)) if widths[i] > floor[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=widths.__getitem__)
        widths[widest] -= 1
    keep = list(range(len(columns)))
    if total(widths) > max_width and len(columns) > 2:
        left, right = [0], [len(columns) - 1]
        budget = max_width - widths[0] - widths[-1] - 2 * 2 - 1
        lo, hi = 1, len(columns) - 2
        turn = 0
        while lo <= hi:
            i = lo if turn % 2 == 0 else hi
            if widths[i] + 2 > budget:
                break
            budget -= widths[i] + 2
            if turn % 2 == 0:
                left.append(i)
                lo += 1
            else:
                right.insert(0, i)
                hi -= 1
            turn += 1
        keep = [*left, -1, *right]
    names = [columns[i] if i >= 0 else "…" for i in keep]
    ws = [widths[i] if i >= 0 else 1 for i in keep]

    def line(values: Sequence[str]) -> str:
        return "  ".join(_cut(v, w).ljust(w) for v, w in zip(values, ws, strict=True)).rstrip()

    lines = [line(names), "  ".join("-" * w for w in ws)]
    for row in cells:
        lines.append(line([row[i] if i >= 0 else "…" for i in keep]))
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
