"""Open captures for reading: files, rotated directories, globs, hive trees, journals.

:func:`open_capture` accepts a path, a glob, or a sequence of them, and reads
them as one capture. Every input is validated up front: a file that is not
Parquet, not an fcap capture, truncated, or of a newer schema raises
:class:`~fcap.errors.CaptureError` naming the file and what is wrong.

:meth:`Capture.attach` creates DuckDB relations without materializing the
events of Parquet files (``raw_events`` is a view over ``read_parquet``); an
unfinished journal is loaded into Arrow and registered. For Parquet-only
captures, the internal view ``raw_events_rn`` adds ``_rn``, each row's position
in ``raw_events``' scan order (file row number + the rows of the files before),
which the enriched views use for ``evt_num``.
"""

from __future__ import annotations

import base64
import glob as globmod
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fcap.capture import journal as jr

from fcap.errors import CaptureError
from fcap.schema import (
    EVENTS,
    META_FIELDS,
    META_KEY,
    SCHEMA_VERSION,
    SIDE_TABLES,
    TABLE_KEY_PREFIX,
    VERSION_KEY,
)

_GLOB_CHARS = re.compile(r"[*?\[]")
_HIVE_HOST = re.compile(r"(?:^|/)host=([^/]+)(?:/|$)")


@dataclass(frozen=True)
class CaptureFile:
    """One validated input: a Parquet capture or a journal directory."""

    path: Path
    kind: str  # "parquet" | "journal"
    meta: dict[str, Any]
    host: str | None
    num_rows: int
    tables: dict[str, pa.Table] = field(repr=False, compare=False)


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def expand(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Resolve the inputs into capture files and journal directories (sorted, unique)."""
    items: Iterable[str | Path] = [paths] if isinstance(paths, str | Path) else paths
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if not p.exists() and _GLOB_CHARS.search(str(item)):
            found = sorted(Path(x) for x in globmod.glob(str(item), recursive=True))
            if not found:
                raise CaptureError(f"{item}: no file matches this pattern")
            for f in found:
                out.extend(_expand_one(f))
            continue
        out.extend(_expand_one(p))
    seen: dict[Path, None] = {}
    for p in out:
        seen.setdefault(p, None)
    if not seen:
        raise CaptureError(f"no capture given ({paths!r})")
    return list(seen)


def _expand_one(p: Path) -> list[Path]:
    if jr.is_journal(p):
        return [p]
    if p.is_dir():
        files = sorted(x for x in p.rglob("*.parquet") if not x.name.startswith("."))
        # A journal whose Parquet file already exists is being removed after
        # finalization (a concurrent read of a live rotated directory): skip it.
        journals = sorted(x for x in p.rglob("*" + jr.JOURNAL_SUFFIX)
                          if jr.is_journal(x) and not jr.output_of_journal(x).exists())
        if not files and not journals:
            raise CaptureError(f"{p}: directory holds no capture (*.parquet) or journal")
        return sorted(files + journals)
    if not p.exists():
        j = jr.journal_path(p)
        if jr.is_journal(j):
            return [j]
        raise CaptureError(f"{p}: no such file")
    return [p]


def _hive_host(p: Path) -> str | None:
    m = _HIVE_HOST.search(str(p))
    return m.group(1) if m else None


def _decode_tables(kv: dict[bytes, bytes], path: Path) -> dict[str, pa.Table]:
    tables: dict[str, pa.Table] = {}
    for name in SIDE_TABLES:
        raw = kv.get((TABLE_KEY_PREFIX + name).encode())
        if raw is None:
            tables[name] = SIDE_TABLES[name].empty_table()
            continue
        try:
            tables[name] = jr.conform(jr.ipc_to_table(base64.b64decode(raw)), name)
        except (ValueError, pa.ArrowException) as err:
            raise CaptureError(f"{path}: corrupt side table {name!r} in the footer ({err})") from None
    return tables


def check_version(value: Any, path: Path) -> int:
    """Validate a schema version, refusing newer ones with a clear message."""
    try:
        version = int(value)
    except (TypeError, ValueError):
        raise CaptureError(f"{path}: invalid fcap.schema_version {value!r}") from None
    if version > SCHEMA_VERSION:
        raise CaptureError(
            f"{path}: written with capture schema {version}, this fcap reads up to {SCHEMA_VERSION}",
            hint="upgrade fcap to read it",
        )
    if version < 1:
        raise CaptureError(f"{path}: invalid fcap.schema_version {version}")
    return version


def _sniff(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0, 2)
            size = f.tell()
            if size >= 8:
                f.seek(-4, 2)
                tail = f.read(4)
            else:
                tail = b""
    except OSError as err:
        raise CaptureError(f"{path}: cannot read ({err.strerror})") from None
    if size == 0:
        return "empty file"
    if head != b"PAR1":
        if head[:4] in (b"\x0a\x0d\x0d\x0a",) or path.suffix == ".scap":
            return "a scap file (Falco/sysdig capture), not an fcap capture"
        if head[:4] == b"ARRO":
            return "an Arrow IPC file, not an fcap capture"
        return "not a Parquet file"
    if tail != b"PAR1":
        return "truncated Parquet file (no footer; an unfinished recording? try `fcap repair`)"
    return ""


def load_file(path: Path) -> CaptureFile:
    """Validate and describe one input (Parquet capture or journal)."""
    host_hint = _hive_host(path)
    if jr.is_journal(path):
        state = jr.read_state(path)
        meta = jr.full_meta(state.meta)
        meta.update({k: v for k, v in state.stats.items() if k in ("end_ns", "drops_per_cpu")})
        meta.update(state.stats.get("meta") or {})  # extra counters (set_stats), e.g. shell_lost
        meta["drops_total"] = int(sum(meta.get("drops_per_cpu") or []))
        meta["complete"] = False
        meta["repaired"] = False
        check_version(state.meta.get("schema_version", SCHEMA_VERSION), path)
        rows = int(state.stats.get("events_written") or 0)
        host = host_hint or meta.get("hostname")
        return CaptureFile(path, "journal", meta, host, rows, state.tables)
    problem = _sniff(path)
    if problem:
        raise CaptureError(f"{path}: {problem}")
    try:
        md = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as err:
        raise CaptureError(f"{path}: corrupt Parquet footer ({err})") from None
    kv = dict(md.metadata or {})
    if VERSION_KEY not in kv:
        raise CaptureError(f"{path}: a Parquet file, but not an fcap capture (no fcap.schema_version)")
    check_version(kv[VERSION_KEY].decode(errors="replace"), path)
    try:
        meta = json.loads(kv.get(META_KEY, b"{}"))
    except ValueError as err:
        raise CaptureError(f"{path}: corrupt fcap.meta ({err})") from None
    meta = {**{k: None for k in META_FIELDS}, **meta}
    names = set(md.schema.to_arrow_schema().names)
    missing = {"ts", "pid", "syscall"} - names
    if missing:
        raise CaptureError(f"{path}: events table lacks columns {sorted(missing)}")
    host = host_hint or meta.get("hostname")
    return CaptureFile(path, "parquet", meta, host, md.num_rows, _decode_tables(kv, path))


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _duck_type(t.value_type)
    simple = {
        pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
        pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT", pa.uint32(): "UINTEGER",
        pa.uint64(): "UBIGINT", pa.string(): "VARCHAR", pa.binary(): "BLOB", pa.bool_(): "BOOLEAN",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    raise TypeError(f"no DuckDB type for {t}")


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """Cast dictionary columns to their value type (for DuckDB registration)."""
    cols = []
    fields = []
    for f, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_dictionary(f.type):
            col = pc.cast(col, f.type.value_type)
            f = pa.field(f.name, f.type.value_type, f.nullable)
        cols.append(col)
        fields.append(f)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


class Capture:
    """One or more capture files read as one capture."""

    def __init__(self, files: Sequence[CaptureFile]) -> None:
        self.files = tuple(files)
        self.paths: tuple[Path, ...] = tuple(f.path for f in files)
        self.meta: list[dict] = [f.meta for f in files]

    def __repr__(self) -> str:
        return f"Capture({len(self.files)} file(s), {self.num_events} events)"

    @property
    def num_events(self) -> int:
        """Total events (from Parquet footers; journals from their stats)."""
        return sum(f.num_rows for f in self.files)

    @property
    def hosts(self) -> list[str]:
        """Distinct host names, in input order."""
        return list(dict.fromkeys(f.host or "" for f in self.files))

    def by_host(self) -> list[Capture]:
        """One capture per host, hosts in input order (each keeps its files' order).

        Process and descriptor state is keyed by pid, which only identifies a
        process within one host: analyses that rebuild it (the replay) work on
        one host's files at a time.
        """
        groups: dict[str, list[CaptureFile]] = {}
        for f in self.files:
            groups.setdefault(f.host or "", []).append(f)
        return [Capture(fs) for fs in groups.values()]

    def select_hosts(self, names: Sequence[str]) -> Capture:
        """The files of the hosts ``names`` (the ``host`` column's values).

        Raises :class:`fcap.errors.CaptureError` naming the hosts there are when
        one of ``names`` has no file.
        """
        have = self.hosts
        missing = [n for n in names if n not in have]
        if missing:
            raise CaptureError(
                f"no capture of host {', '.join(map(repr, missing))}",
                hint=f"the captures are of {', '.join(repr(h) for h in have)}")
        return Capture([f for f in self.files if (f.host or "") in set(names)])

    def side_table(self, name: str) -> pa.Table:
        """Side table ``name`` over all files, with a ``host`` column, duplicates removed."""
        if name not in SIDE_TABLES:
            raise KeyError(f"unknown side table {name!r}; one of {sorted(SIDE_TABLES)}")
        parts = []
        for f in self.files:
            t = f.tables[name]
            parts.append(t.append_column("host", pa.array([f.host] * t.num_rows, pa.string())))
        if not parts:
            schema = SIDE_TABLES[name].append(pa.field("host", pa.string()))
            return schema.empty_table()
        table = pa.concat_tables(parts)
        return _dedup(name, table)

    def events_table(self) -> pa.Table:
        """All events materialized in Arrow (small captures and tests only)."""
        import duckdb

        con = duckdb.connect()
        self.attach(con)
        return con.sql("SELECT * FROM raw_events").to_arrow_table()

    def meta_table(self) -> pa.Table:
        """One row per file: host, path, kind and the fcap.meta fields."""
        rows = []
        for f in self.files:
            m = f.meta
            row = {"host": f.host, "path": str(f.path), "kind": f.kind, "num_rows": f.num_rows}
            for k in META_FIELDS:
                v = m.get(k)
                row[k] = json.dumps(v) if k == "filters" else v
            row["meta"] = json.dumps(m, sort_keys=True)
            rows.append(row)
        schema = pa.schema(
            [("host", pa.string()), ("path", pa.string()), ("kind", pa.string()),
             ("num_rows", pa.int64()), ("schema_version", pa.int64()),
             ("fcap_version", pa.string()), ("hostname", pa.string()), ("kernel", pa.string()),
             ("machine", pa.string()), ("boot_time_ns", pa.int64()), ("start_ns", pa.int64()),
             ("end_ns", pa.int64()), ("syscalls", pa.list_(pa.string())),
             ("filters", pa.string()), ("snaplen", pa.int64()), ("events_written", pa.int64()),
             ("drops_per_cpu", pa.list_(pa.int64())), ("drops_total", pa.int64()),
             ("complete", pa.bool_()), ("repaired", pa.bool_()), ("first_ts", pa.int64()),
             ("last_ts", pa.int64()), ("segment", pa.int64()), ("command", pa.list_(pa.string())),
             ("meta", pa.string())]
        )
        return pa.Table.from_pylist(rows, schema=schema)

    def attach(self, con: Any) -> None:
        """Create raw_events (lazy view), raw_<side table> and raw_meta in ``con``."""
        selects = []
        parquet = [f for f in self.files if f.kind == "parquet"]
        if parquet:
            selects.append(self._parquet_select(parquet))
        for i, f in enumerate(f for f in self.files if f.kind == "journal"):
            name = f"fcap_journal_{i}"
            table = decode_dictionaries(jr.read_events_table(f.path))
            con.register(name, table)
            host = "NULL" if f.host is None else _sql_str(f.host)
            cols = ", ".join(f'"{c.name}"' for c in EVENTS)
            selects.append(f"SELECT {cols}, CAST({host} AS VARCHAR) AS host FROM {name}")
        if not selects:
            cols = ", ".join(f'CAST(NULL AS {_duck_type(c.type)}) AS "{c.name}"' for c in EVENTS)
            selects.append(f"SELECT {cols}, CAST(NULL AS VARCHAR) AS host WHERE false")
        con.execute("CREATE OR REPLACE VIEW raw_events AS " + " UNION ALL ".join(selects))
        # internal: the same rows with their scan position (_rn), when every source is
        # Parquet (file row number + the rows of the files before); journals have none
        con.execute("DROP VIEW IF EXISTS raw_events_rn")
        if parquet and len(selects) == 1:
            con.execute("CREATE VIEW raw_events_rn AS " + self._parquet_select(parquet, rn=True))
        for name in SIDE_TABLES:
            con.register(f"fcap_side_{name}", self.side_table(name))
            con.execute(f"CREATE OR REPLACE TABLE raw_{name} AS SELECT * FROM fcap_side_{name}")
            con.unregister(f"fcap_side_{name}")
        con.register("fcap_meta_arrow", self.meta_table())
        con.execute("CREATE OR REPLACE TABLE raw_meta AS SELECT * FROM fcap_meta_arrow")
        con.unregister("fcap_meta_arrow")

    @staticmethod
    def _parquet_select(files: Sequence[CaptureFile], rn: bool = False) -> str:
        """``SELECT`` of the events of ``files``; ``rn``: with ``_rn``, the row's scan position."""
        listing = "[" + ", ".join(_sql_str(str(f.path)) for f in files) + "]"
        present: set[str] = set()
        schemas = {}
        for f in files:
            s = pq.read_schema(f.path)
            schemas[f.path] = s
            present |= set(s.names)
        cols = []
        for c in EVENTS:
            if c.name in present:
                cols.append(f'"{c.name}"')
            else:
                cols.append(f'CAST(NULL AS {_duck_type(c.type)}) AS "{c.name}"')
        hosts = {f.host for f in files}
        if len(hosts) == 1:
            h = next(iter(hosts))
            host = "CAST(NULL AS VARCHAR)" if h is None else _sql_str(h)
        else:
            whens = " ".join(
                f"WHEN {_sql_str(str(f.path))} THEN {_sql_str(f.host) if f.host else 'NULL'}"
                for f in files
            )
            host = f"CASE filename {whens} END"
        extra, opt = "", ""
        if rn:
            opt = ", file_row_number = true"
            if len(files) == 1:
                extra = ", file_row_number AS _rn"
            else:
                offs, n = [], 0
                for f in files:
                    offs.append(f"WHEN {_sql_str(str(f.path))} THEN {n}")
                    n += f.num_rows
                extra = f", file_row_number + CASE filename {' '.join(offs)} END AS _rn"
        return (
            f"SELECT {', '.join(cols)}, {host} AS host{extra} FROM read_parquet({listing}, "
            f"union_by_name = true, filename = true, hive_partitioning = false{opt})"
        )


def _dedup(name: str, table: pa.Table) -> pa.Table:
    from fcap.capture.writer import SIDE_KEYS

    keys = (*SIDE_KEYS.get(name, ()), "host")
    cols = [table.column(k).to_pylist() for k in keys]
    seen: set[tuple] = set()
    mask = []
    for key in zip(*cols, strict=True):
        mask.append(key not in seen)
        seen.add(key)
    if all(mask):
        return table
    return table.filter(pa.array(mask, pa.bool_()))


def open_capture(paths: str | Path | Sequence[str | Path]) -> Capture:
    """Open one or more captures (file, rotated dir, list, glob, hive tree, journal) as one."""
    return Capture([load_file(p) for p in expand(paths)])
