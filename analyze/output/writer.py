"""Write alerts as Falco text lines or JSON objects, one per line."""

from __future__ import annotations

from typing import IO, Any

from .format import alert_json, text_line


class AlertWriter:
    """Formats each alert (``fcap.analyze.engine.Alert``) and writes one line."""

    def __init__(self, out: IO[str], *, json_output: bool = False, iso8601: bool = False) -> None:
        self.out = out
        self.json_output = json_output
        self.iso8601 = iso8601

    def format(self, alert: Any) -> str:
        if self.json_output:
            return alert_json(alert, iso8601=self.iso8601)
        return text_line(alert.ts, alert.priority, alert.message, iso8601=self.iso8601)

    def write(self, alert: Any) -> None:
        self.out.write(self.format(alert) + "\n")
