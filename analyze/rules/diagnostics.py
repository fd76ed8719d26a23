"""Collecting loader diagnostics (errors and warnings) with file positions.

Codes and messages are Falco's (``falco:userspace/engine/falco_load_result.cpp``,
``rule_loading_messages.h``) so that Falco's own expectations
(``validate_errors`` of its regression suite) can be checked against ours.
Unlike Falco, which stops at the first error of a file, the loader records the
error, skips the offending item and goes on, so one run reports every problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from fcap.errors import SourceLocation

from .model import Diagnostic, Severity

# error codes
YAML_PARSE = "LOAD_ERR_YAML_PARSE"
YAML_VALIDATE = "LOAD_ERR_YAML_VALIDATE"
COMPILE_CONDITION = "LOAD_ERR_COMPILE_CONDITION"
COMPILE_OUTPUT = "LOAD_ERR_COMPILE_OUTPUT"
VALIDATE = "LOAD_ERR_VALIDATE"
FILE_READ = "LOAD_ERR_FILE_READ"
# warning codes
UNKNOWN_SOURCE = "LOAD_UNKNOWN_SOURCE"
UNSAFE_NA_CHECK = "LOAD_UNSAFE_NA_CHECK"
UNUSED_MACRO = "LOAD_UNUSED_MACRO"
UNUSED_LIST = "LOAD_UNUSED_LIST"
UNKNOWN_ITEM = "LOAD_UNKNOWN_ITEM"
DEPRECATED_ITEM = "LOAD_DEPRECATED_ITEM"
APPEND_NO_VALUES = "LOAD_APPEND_NO_VALUES"
EXCEPTION_NAME_NOT_UNIQUE = "LOAD_EXCEPTION_NAME_NOT_UNIQUE"
INVALID_MACRO_NAME = "LOAD_INVALID_MACRO_NAME"
INVALID_LIST_NAME = "LOAD_INVALID_LIST_NAME"
UNKNOWN_KEY = "LOAD_UNKNOWN_KEY"
UNKNOWN_PLUGIN = "LOAD_UNKNOWN_PLUGIN"  # fcap: a required plugin fcap does not provide
LIST_NAME_TYPO = "LOAD_LIST_NAME_TYPO"  # fcap: a list item that is nearly a list name

WARNING_APPEND = (
    "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under "
    "'override' instead."
)
WARNING_ENABLED = (
    "The standalone 'enabled' key usage is deprecated. The correct approach requires also a "
    "'replace' entry under the 'override' key (i.e. 'enabled: replace')."
)
ERROR_OVERRIDE_APPEND = (
    "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
    "'condition: append') under 'override' instead."
)
ERROR_NO_PREVIOUS_MACRO = (
    "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"
)
ERROR_NO_PREVIOUS_LIST = (
    "List uses 'append' or 'override.items: append' but no list by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_APPEND = (
    "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_REPLACE = (
    "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists"
)


class LoadError(Exception):
    """Raised inside the loader passes; recorded as an error diagnostic."""

    def __init__(self, code: str, message: str, location: SourceLocation | None,
                 item_type: str = "", item_name: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.location = location
        self.item_type = item_type
        self.item_name = item_name
        self.hint = hint


class Sink:
    """Accumulates diagnostics in the order they are found."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, code: str, message: str, location: SourceLocation | None = None, *,
              item_type: str = "", item_name: str = "", hint: str | None = None) -> None:
        self.items.append(Diagnostic(Severity.ERROR, code, message, location, hint,
                                     item_type, item_name))

    def warning(self, code: str, message: str, location: SourceLocation | None = None, *,
                item_type: str = "", item_name: str = "", hint: str | None = None) -> None:
        self.items.append(Diagnostic(Severity.WARNING, code, message, location, hint,
                                     item_type, item_name))

    def add(self, e: LoadError) -> None:
        self.error(e.code, e.message, e.location, item_type=e.item_type,
                   item_name=e.item_name, hint=e.hint)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for a misspelled macro/list/key name, or None."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.75)
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean one of " + ", ".join(f"'{c}'" for c in close) + "?"
