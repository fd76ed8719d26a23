"""``fcap repair``: finalize the journal(s) a crashed recording left behind."""

from __future__ import annotations

from pathlib import Path

from fcap.capture import journal as jr

from fcap.errors import CaptureError


def find_journals(path: Path) -> list[Path]:
    """The journals ``path`` designates: a journal dir, an output path, or a rotated dir."""
    path = Path(path)
    if jr.is_journal(path):
        return [path]
    candidate = jr.journal_path(path)
    if jr.is_journal(candidate):
        return [candidate]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if jr.is_journal(p))
    return []


def repair(path: Path) -> list[Path]:
    """Finalize every crashed journal at ``path`` into Parquet (meta complete=false).

    (A rotated segment that was already closed when the recorder died keeps
    complete=true.)

    ``path`` is the output path given to ``fcap record``, its ``.partial``
    journal, or a rotated output directory. A truncated last IPC message is
    dropped; everything before it is kept. Returns the capture files written.
    """
    path = Path(path)
    journals = find_journals(path)
    stub = path if path.name.endswith(jr.JOURNAL_SUFFIX) else jr.journal_path(path)
    if not journals and stub.is_dir() and not (stub / jr.EVENTS_FILE).exists():
        raise CaptureError(
            f"{stub}: the recording stopped before writing anything (an empty journal)",
            hint=f"nothing to keep: remove {stub}",
        )
    if not journals:
        if path.exists() and path.is_file():
            raise CaptureError(f"{path}: nothing to repair (no journal {jr.journal_path(path).name})")
        if not path.exists() and not jr.journal_path(path).exists():
            raise CaptureError(f"{path}: no such capture or journal")
        raise CaptureError(f"{path}: no unfinished journal found")
    out = []
    for j in journals:
        target = jr.output_of_journal(j)
        if target.exists():
            raise CaptureError(
                f"{j}: refusing to overwrite {target}", hint="move the existing file away first"
            )
        # A rotated segment whose stream was closed cleanly, killed while it
        # was being converted, is complete; anything else lost its tail.
        closed = bool(jr.read_json(j / jr.STATS_FILE).get("closed"))
        out.append(jr.finalize(j, complete=closed, repaired=True))
    return out
