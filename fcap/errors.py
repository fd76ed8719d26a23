"""Errors a person can act on.

Every error fcap raises for a user mistake or a missing prerequisite derives
from :class:`FcapError`. The CLI prints ``str(error)`` (no traceback) and exits
with ``error.exit_code``. Messages name the cause and, where there is one, the
fix, on one line; :class:`SourceError` carries a ``file:line:col`` location and
renders the offending line with a caret under the column.
"""

from __future__ import annotations

from dataclasses import dataclass


class FcapError(Exception):
    """Base class of every user-facing fcap error."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class PrerequisiteError(FcapError):
    """The host lacks something the recorder needs (root, bcc, headers, tracefs...)."""

    exit_code = 2


class CaptureError(FcapError):
    """A capture file is missing, foreign, corrupt, or of a newer schema."""

    exit_code = 2


class ResourceError(FcapError):
    """The machine lacks the memory an analysis needs (raised before it starts)."""

    exit_code = 2


class UsageError(FcapError):
    """The command line asked for something impossible."""

    exit_code = 2


@dataclass(frozen=True)
class SourceLocation:
    """A position in a source text (1-based line and column)."""

    file: str
    line: int
    col: int
    line_text: str = ""
    length: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def render(self) -> str:
        """The source line with a caret (or a run of carets) under the column."""
        if not self.line_text:
            return ""
        marker = " " * (max(self.col, 1) - 1) + "^" * max(self.length, 1)
        return f"    {self.line_text}\n    {marker}"


class SourceError(FcapError):
    """An error at a position in a rules file, a condition or a query."""

    def __init__(
        self, message: str, location: SourceLocation | None = None, *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.location = location

    def __str__(self) -> str:
        head = f"{self.location}: " if self.location else ""
        text = f"{head}error: {self.message}"
        if self.location and self.location.line_text:
            text += "\n" + self.location.render()
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text
