"""Falco's alert formats: field values as text, the text line and the JSON object.

* Field text follows libsinsp's ``tostring``: strings as they are, numbers in
  decimal, booleans ``true``/``false``, missing values ``<NA>`` (Falco formats
  with a leading ``*``), time fields formatted (``evt.time`` local
  ``HH:MM:SS.nnnnnnnnn``, ``evt.time.iso8601`` UTC ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+0000``,
  ``evt.datetime`` ...); a ``%Nfield`` width pads with blanks or truncates.
* The text line is ``<time>: <Priority> <message>``, then JSON-string-escaped
  with the quotes removed, as ``falco:userspace/engine/formats.cpp`` does.
* The JSON object has the keys ``hostname output output_fields priority rule
  source tags time`` serialised in sorted order (nlohmann::json), compact.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Sequence
from typing import Any

from fcap.analyze.fields.types import FieldType

PRIORITY_NAMES = (
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
)
NA = "<NA>"


def priority_name(priority: Any) -> str:
    """Falco's canonical capitalised name (``INFO`` prints ``Informational``)."""
    value = getattr(priority, "value", priority)
    if isinstance(value, int) and 0 <= value < len(PRIORITY_NAMES):
        return PRIORITY_NAMES[value]
    text = str(getattr(priority, "name", priority)).lower()
    for name in PRIORITY_NAMES:
        if name.lower().startswith(text[:4]):
            return name
    return str(priority)


def priority_value(priority: Any) -> int:
    value = getattr(priority, "value", priority)
    if isinstance(value, int):
        return value
    return PRIORITY_NAMES.index(priority_name(priority))


def _split(ts: int) -> tuple[int, int]:
    return ts // 1_000_000_000, ts % 1_000_000_000


def time_local(ts: int) -> str:
    """libsinsp ``ts_to_string``: local ``HH:MM:SS.nnnnnnnnn``."""
    sec, ns = _split(ts)
    return _time.strftime("%H:%M:%S", _time.localtime(sec)) + f".{ns:09d}"


def time_iso8601(ts: int) -> str:
    """``%evt.time.iso8601``: UTC ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+0000``."""
    sec, ns = _split(ts)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec)) + f".{ns:09d}+0000"


def time_json(ts: int) -> str:
    """The JSON ``time`` key: UTC ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    sec, ns = _split(ts)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec)) + f".{ns:09d}Z"


def _datetime_local(ts: int, *, ns: bool) -> str:
    sec, frac = _split(ts)
    text = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(sec))
    return text + (f".{frac:09d}" if ns else "")


_TIME_TEXT = {
    "evt.time": time_local,
    "evt.time.s": lambda ts: _time.strftime("%H:%M:%S", _time.localtime(ts // 1_000_000_000)),
    "evt.time.iso8601": time_iso8601,
    "evt.datetime": lambda ts: _datetime_local(ts, ns=True),
    "evt.datetime.s": lambda ts: _datetime_local(ts, ns=False),
}


def field_text(name: str, ftype: FieldType, value: Any) -> str:
    """One field value as libsinsp prints it in a text output."""
    if value is None:
        return NA
    base = name.split("[", 1)[0]
    if ftype is FieldType.ABSTIME and base in _TIME_TEXT and isinstance(value, int):
        return _TIME_TEXT[base](value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(field_text(name, ftype, v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def apply_width(text: str, width: int) -> str:
    """``std::string::resize(width, ' ')``: pad with blanks or truncate."""
    if width <= 0:
        return text
    raw = text.encode("utf-8", "surrogateescape")[:width].ljust(width, b" ")
    return raw.decode("utf-8", "replace")


def escape_text_line(line: str) -> str:
    """JSON-encode the line and drop the quotes (Falco's text output)."""
    return json.dumps(line, ensure_ascii=False)[1:-1]


def text_line(ts: int, priority: Any, message: str, *, iso8601: bool = False) -> str:
    prefix = time_iso8601(ts) if iso8601 else time_local(ts)
    return escape_text_line(f"{prefix}: {priority_name(priority)} {message}")


def json_object(
    *,
    ts: int,
    rule: str,
    priority: Any,
    source: str,
    tags: Sequence[str],
    hostname: str,
    message: str,
    output_fields: dict[str, Any],
    iso8601: bool = False,
) -> str:
    """Falco's JSON alert (keys sorted, compact separators)."""
    prefix = time_iso8601(ts) if iso8601 else time_local(ts)
    fields = dict(output_fields)
    fields["evt.time.iso8601" if iso8601 else "evt.time"] = ts
    obj = {
        "hostname": hostname,
        "output": f"{prefix}: {priority_name(priority)} {message}",
        "output_fields": fields,
        "priority": priority_name(priority),
        "rule": rule,
        "source": source,
        "tags": sorted(tags),
        "time": time_json(ts),
    }
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def alert_json(alert: Any, *, iso8601: bool = False) -> str:
    """Falco's JSON object for one engine :class:`~fcap.analyze.engine.Alert`."""
    return json_object(
        ts=alert.ts,
        rule=alert.rule,
        priority=alert.priority,
        source=alert.source,
        tags=alert.tags,
        hostname=alert.hostname,
        message=alert.message,
        output_fields=alert.output_fields,
        iso8601=iso8601,
    )
