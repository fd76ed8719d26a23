"""Alert outputs: Falco's text lines and JSON objects, and the closing summary."""

from __future__ import annotations

from .format import json_object, priority_name, text_line
from .summary import summary_text
from .writer import AlertWriter

__all__ = ["AlertWriter", "json_object", "priority_name", "summary_text", "text_line"]
