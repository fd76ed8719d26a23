"""Shell sessions: who typed what, where, and what each command did.

A *session* is an interactive shell on a terminal: the ``shell_line`` rows of
one shell process (host, pid, tty). For each session fcap tells how it was
entered (ssh, console, su/sudo, a container exec through runc/containerd-shim,
a terminal), who (uid, user name, loginuid) and where (host, or container with
its Kubernetes pod and namespace). Each *command* (a typed line, or lines
joined by a trailing backslash) is linked to its effects: the processes it
spawned (the whole subtree), the files it created/wrote/renamed/deleted
(including the shell's own opens, e.g. a builtin's ``> file`` redirection) and
the connections it opened. A command's window runs from its line to the next
command of the same shell.

Usage::

    con = duckdb.connect()
    open_capture(path).attach(con)
    create_views(con)                 # sessions, shell_commands, shell_effects
    list_sessions(con)                # -> list[Session]
    transcript(con, 1)                # -> Transcript (session + commands + effects)

The SQL lives in :mod:`fcap.analyze.sessions.sql`, rendering in
:mod:`fcap.analyze.sessions.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fcap.analyze.sessions import sql

from fcap.errors import UsageError

__all__ = [
    "Command",
    "Effect",
    "Session",
    "Transcript",
    "create_views",
    "list_sessions",
    "transcript",
]


def create_views(con: Any) -> None:
    """Create ``sessions``, ``shell_commands`` and ``shell_effects`` in ``con``.

    ``con`` must hold the ``raw_*`` relations of a capture
    (:meth:`fcap.capture.reader.Capture.attach`).
    """
    con.execute(sql.LINES)
    any_lines = con.execute("SELECT count(*) FROM fs_lines").fetchall()[0][0] > 0
    source = "raw_events" if any_lines else "(SELECT * FROM raw_events LIMIT 0)"
    for stmt in (
        sql.SEED, sql.PARENTS, sql.ANCESTORS, sql.SESSIONS, sql.entry_sql(),
        sql.COMMANDS, sql.SUBTREE, sql.ACTORS, sql.EFFECTS,
    ):  # fmt: skip
        con.execute(stmt.replace(sql.EVENTS_SOURCE, source))
    for stmt in sql.VIEWS.split(";\n"):
        if stmt.strip():
            con.execute(stmt)


@dataclass(frozen=True)
class Session:
    """One interactive shell on a terminal."""

    session_id: int
    host: str | None
    shell_pid: int
    shell: str
    shells: tuple[str, ...]
    tty: int | None
    sid: int | None
    start_ts: int
    last_ts: int
    uid: int | None
    user_name: str | None
    loginuid: int | None
    login_user_name: str | None
    container_id: str | None
    container_name: str | None
    container_image: str | None
    k8s_pod_name: str | None
    k8s_ns_name: str | None
    entered_via: str
    ancestors: tuple[str, ...]
    lines: int
    withheld_lines: int
    commands: int

    @property
    def tty_name(self) -> str:
        return tty_name(self.tty)

    @property
    def where(self) -> str:
        """``host`` or ``container <name|id12> (pod ns/name)``."""
        if not self.container_id:
            return "host"
        text = f"container {self.container_name or self.container_id[:12]}"
        if self.k8s_pod_name:
            text += f" (pod {self.k8s_ns_name}/{self.k8s_pod_name})"
        return text


@dataclass(frozen=True)
class Effect:
    """Something a command caused: a process, a file change, a connection."""

    ts: int
    pid: int
    comm: str | None
    kind: str  # process | file | network
    syscall: str
    target: str | None
    detail: str | None
    open_flags: int | None
    res: int | None = None


@dataclass(frozen=True)
class Command:
    """One typed command and its effects."""

    command_no: int
    ts: int
    line: str | None
    withheld: bool  # the line itself was read with echo off (no command text)
    shell: str
    flags: int
    effects: tuple[Effect, ...]
    #: lines typed while the command ran (its ``read``), as (ts, text or None if withheld)
    inputs: tuple[tuple[int, str | None], ...] = ()


@dataclass(frozen=True)
class Transcript:
    session: Session
    commands: tuple[Command, ...]


def tty_name(dev: int | None) -> str:
    """``pts/3``, ``tty1``, ``ttyS0``, ``console``... from a ``new_encode_dev`` value."""
    if not dev:
        return "?"
    major, minor = (dev >> 8) & 0xFFF, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    if major == 5:
        return {0: "tty", 1: "console", 2: "ptmx"}.get(minor, f"5:{minor}")
    return f"{major}:{minor}"


def _rows(con: Any, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(query, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _ensure(con: Any) -> None:
    try:
        con.execute("SELECT 1 FROM fs_sessions_named LIMIT 0").fetchall()
    except Exception:
        create_views(con)


def list_sessions(con: Any) -> list[Session]:
    """Every session of the capture in ``con``, by start time."""
    _ensure(con)
    fields = Session.__dataclass_fields__
    out = []
    for r in _rows(con, "SELECT * FROM sessions ORDER BY session_id"):
        vals = {k: r[k] for k in fields}
        vals["shells"] = tuple(vals["shells"] or ())
        vals["ancestors"] = tuple(vals["ancestors"] or ())
        out.append(Session(**vals))
    return out


def transcript(con: Any, session_id: int) -> Transcript:
    """Session ``session_id`` with its commands and their effects."""
    sessions = {s.session_id: s for s in list_sessions(con)}
    if session_id not in sessions:
        known = ", ".join(str(i) for i in sorted(sessions)) or "none"
        raise UsageError(f"no session {session_id} in this capture (sessions: {known})")
    effects: dict[int, list[Effect]] = {}
    for r in _rows(
        con,
        "SELECT command_no, ts, pid, comm, kind, syscall, target, detail, open_flags, res "
        "FROM shell_effects WHERE session_id = ? ORDER BY ts, pid",
        [session_id],
    ):
        effects.setdefault(r.pop("command_no"), []).append(Effect(**r))
    commands = tuple(
        Command(
            command_no=r["command_no"], ts=r["ts"], line=r["line"], withheld=r["withheld"],
            shell=r["shell"], flags=r["flags"],
            effects=tuple(effects.get(r["command_no"], ())),
            inputs=tuple((i["ts"], None if i["withheld"] else i["text"]) for i in r["inputs"]),
        )
        for r in _rows(
            con,
            "SELECT command_no, ts, line, withheld, shell, flags, inputs FROM shell_commands "
            "WHERE session_id = ? ORDER BY ts",
            [session_id],
        )
    )
    return Transcript(sessions[session_id], commands)
