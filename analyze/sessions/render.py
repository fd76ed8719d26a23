"""Text and JSON renderings of sessions and transcripts (``fcap sessions``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
from typing import Any

from fcap.analyze.sessions import Command, Effect, Session, Transcript

_OPEN_BITS = (
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
    (0o2000000, "O_CLOEXEC"), (0o20000000, "O_TMPFILE"),
)  # fmt: skip
_UNSET = 4294967295


def open_flags(flags: int | None) -> str:
    """``O_WRONLY|O_CREAT|O_TRUNC`` for an open(2) flags value."""
    if flags is None:
        return ""
    names = [("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[flags & 3]]
    names += [n for bit, n in _OPEN_BITS if flags & bit and n != "O_TMPFILE"]
    return "|".join(names)


def when(ts: int, *, date: bool = False) -> str:
    """UTC wall-clock text of a ns timestamp (milliseconds)."""
    t = dt.datetime.fromtimestamp(ts / 1e9, dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")[:-3]


def _who(s: Session) -> str:
    user = s.user_name or f"uid {s.uid}"
    if s.loginuid is None or s.loginuid == _UNSET:
        login = "loginuid unset"
    else:
        login = f"logged in as {s.login_user_name or s.loginuid} (loginuid {s.loginuid})"
    return f"{user} (uid {s.uid}), {login}"


def sessions_table(sessions: list[Session]) -> str:
    """The ``fcap sessions CAPTURE`` listing."""
    head = ("ID", "START (UTC)", "SHELL", "PID", "TTY", "USER", "ENTERED VIA", "WHERE", "CMDS")
    rows = [head] + [
        (
            str(s.session_id), when(s.start_ts, date=True), "/".join(s.shells), str(s.shell_pid),
            s.tty_name, s.user_name or str(s.uid), s.entered_via, s.where,
            str(s.commands) + (f" (+{s.withheld_lines} withheld)" if s.withheld_lines else ""),
        )
        for s in sessions
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _effect_line(e: Effect) -> str:
    if e.kind == "process":
        return f"process  {e.pid:<7} {e.detail or e.target or e.comm}"
    if e.kind == "network":
        failed = ""
        if e.res is not None and e.res < 0 and e.res != -115:  # EINPROGRESS: non-blocking
            failed = f" (failed: {errno.errorcode.get(-e.res, -e.res)})"
        return f"network  {e.syscall} {e.detail or e.target or '?'}{failed}  ({e.comm} {e.pid})"
    extra = f" {open_flags(e.open_flags)}" if e.syscall in ("open", "openat", "openat2") else ""
    return f"file     {e.syscall} {e.detail or e.target or ''}{extra}  ({e.comm} {e.pid})"


def transcript_text(t: Transcript) -> str:
    """A session's header, then each command with its time and its effects indented."""
    s = t.session
    out = [
        f"Session {s.session_id}: {'/'.join(s.shells)} pid {s.shell_pid} on {s.tty_name}"
        f" ({s.host or 'host'}), {s.where}",
        f"  user: {_who(s)}",
        f"  entered via: {s.entered_via}"
        + (f" (ancestors: {' < '.join(s.ancestors[:6])})" if s.ancestors else ""),
        f"  from {when(s.start_ts, date=True)} to {when(s.last_ts, date=True)} UTC,"
        f" {s.commands} commands",
        "",
    ]
    for c in t.commands:
        out += _command_lines(c)
    return "\n".join(out)


def _command_lines(c: Command) -> list[str]:
    stamp = when(c.ts)
    if c.withheld:
        return [f"{stamp}  [input withheld: terminal echo was off]"]
    text = (c.line or "").split("\n")
    lines = [f"{stamp}  $ {text[0]}"] + [f"{'':12}  > {x}" for x in text[1:]]
    for ts, text in c.inputs:
        what = "[input withheld: terminal echo was off]" if text is None else f"input: {text}"
        lines.append(f"{'':14}  {what}  ({when(ts)})")
    lines += [f"{'':14}  {_effect_line(e)}" for e in c.effects]
    return lines


def to_json(obj: Any) -> Any:
    """Dataclasses -> plain JSON-ready structures (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        d = {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, Session):
            d["tty_name"] = obj.tty_name
            d["where"] = obj.where
        if isinstance(obj, Effect) and obj.open_flags is not None:
            d["open_flags_text"] = open_flags(obj.open_flags)
        return d
    if isinstance(obj, (list, tuple)):
        return [to_json(x) for x in obj]
    return obj
