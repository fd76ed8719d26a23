"""Where a capture goes: early output checks and rotated segment names.

:func:`check_output` refuses, before any probe loads, an output the writer
could not use (missing or unwritable directory, an unfinished journal of an
earlier recording, an existing file or segments); :func:`segment_name` names
the time-stamped segments of a rotated capture. :mod:`fcap.capture.writer`
re-exports both.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from fcap.capture import journal as jr

from fcap.errors import CaptureError


def segment_name(start_ns: int, index: int) -> str:
    """File name of rotated segment ``index`` (0-based) starting at ``start_ns``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start_ns / 1e9))
    return f"fcap-{stamp}-{index + 1:04d}.parquet"


def _probe_writable(directory: Path) -> None:
    """Raise CaptureError unless a file can be created in ``directory``."""
    probe = directory / f".fcap-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as err:
        raise CaptureError(
            f"output directory {directory} is not writable: {err.strerror}",
            hint="choose another -o path",
        ) from None


def check_output(path: Path, *, rotate: bool = False, overwrite: bool = False) -> None:
    """Fail early (before probes load) when ``path`` cannot receive a capture."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CaptureError(f"cannot write {path}: directory {parent} does not exist")
    journal = jr.journal_path(path)
    if journal.exists():
        raise CaptureError(
            f"{journal} exists: an earlier recording to {path} did not finish",
            hint=f"run `fcap repair {journal}` to keep it, or remove it",
        )
    if rotate:
        if path.exists() and not path.is_dir():
            raise CaptureError(f"cannot write rotated segments to {path}: it is a file")
        if path.is_dir():
            crashed = sorted(path.glob("*" + jr.JOURNAL_SUFFIX))
            if crashed:
                raise CaptureError(
                    f"{crashed[0]} exists: an earlier recording to {path} did not finish",
                    hint=f"run `fcap repair {path}` to keep it, or remove it",
                )
            if any(path.glob("*.parquet")) and not overwrite:
                raise CaptureError(
                    f"{path} already holds capture segments", hint="choose another -o directory"
                )
            _probe_writable(path)
            return
    else:
        if path.is_dir():
            raise CaptureError(f"cannot write {path}: it is a directory", hint="give a file name")
        if path.exists() and not overwrite:
            raise CaptureError(f"{path} already exists", hint="remove it or choose another -o path")
    _probe_writable(parent)
