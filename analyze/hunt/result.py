"""Query results: a DuckDB relation with a useful repr for terminals and Jupyter.

:class:`Result` wraps a :class:`duckdb.DuckDBPyRelation` and forwards every
attribute to it (``.df()``, ``.pl()``, ``.to_arrow_table()``, ``.fetchall()``,
``.filter()``, ``.order()`` ...; methods that return a relation return a
:class:`Result` again), so it is used exactly like a DuckDB relation. It adds:

* ``repr()``: row and column counts, the schema and the first rows;
* ``_repr_html_()``: the same as an HTML table, which Jupyter shows;
* ``len()``: the number of rows (runs a ``count(*)``);
* clear messages when the optional pandas (``.df()``) or polars (``.pl()``)
  are not installed: neither is a dependency of fcap.
"""

from __future__ import annotations

import html
from typing import Any

import duckdb

from fcap.errors import FcapError

#: Rows shown by repr() and in Jupyter.
PREVIEW_ROWS = 10


class MissingOptionalDependency(FcapError):
    """An optional package (pandas, polars) is needed for this call."""

    exit_code = 2


def _require(module: str, call: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise MissingOptionalDependency(
            f"{call} needs {module}, which is not installed",
            hint=f"pip install {module}; or use .to_arrow_table() / .fetchall(), which need nothing",
        ) from None


class Result:
    """A lazy query result; behaves as the :class:`duckdb.DuckDBPyRelation` it wraps."""

    __slots__ = ("_rel",)

    def __init__(self, relation: duckdb.DuckDBPyRelation) -> None:
        self._rel = relation

    @property
    def relation(self) -> duckdb.DuckDBPyRelation:
        """The wrapped DuckDB relation."""
        return self._rel

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._rel, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            return Result(out) if isinstance(out, duckdb.DuckDBPyRelation) else out

        call.__doc__ = getattr(attr, "__doc__", None)
        return call

    def __dir__(self) -> list[str]:
        return sorted(set(dir(type(self))) | set(dir(self._rel)))

    # -- conversions with clear messages for optional packages -----------
    def df(self) -> Any:
        """The result as a pandas DataFrame (needs the optional pandas)."""
        _require("pandas", ".df()")
        return self._rel.df()

    def pl(self) -> Any:
        """The result as a polars DataFrame (needs the optional polars)."""
        _require("polars", ".pl()")
        return self._rel.pl()

    def to_arrow_table(self) -> Any:
        """The result as a :class:`pyarrow.Table` (always available)."""
        return self._rel.to_arrow_table()

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict (column name -> value)."""
        cols = self._rel.columns
        return [dict(zip(cols, row, strict=True)) for row in self._rel.fetchall()]

    # -- size and display -------------------------------------------------
    def __len__(self) -> int:
        return int(self._rel.aggregate("count(*)").fetchall()[0][0])

    def _preview(self) -> tuple[list[tuple[Any, ...]], int]:
        return self._rel.limit(PREVIEW_ROWS).fetchall(), len(self)

    def __repr__(self) -> str:
        from fcap.analyze.hunt.formats import render_table

        rows, total = self._preview()
        cols = self._rel.columns
        types = [str(t) for t in self._rel.types]
        head = f"fcap result: {total} row{'s' if total != 1 else ''} x {len(cols)} columns"
        schema = ", ".join(f"{c} {t}" for c, t in zip(cols, types, strict=True))
        body = render_table(cols, rows, max_width=120)
        more = f"\n... {total - len(rows)} more rows" if total > len(rows) else ""
        return f"{head}\nschema: {schema}\n{body}{more}"

    def _repr_html_(self) -> str:
        rows, total = self._preview()
        cols = self._rel.columns
        types = [str(t) for t in self._rel.types]
        esc = html.escape
        th = "".join(
            f"<th>{esc(c)}<br><small>{esc(t)}</small></th>" for c, t in zip(cols, types, strict=True)
        )
        trs = "".join(
            "<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
        )
        more = f"<p>... {total - len(rows)} more rows</p>" if total > len(rows) else ""
        return (
            f"<p><b>fcap result</b>: {total} rows x {len(cols)} columns</p>"
            f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>{more}"
        )


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"
