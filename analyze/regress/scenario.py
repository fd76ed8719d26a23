"""Helpers for sample scenario scripts (samples/*/scenario.py).

A scenario performs an activity for real while ``fcap record`` runs:

    from fcap.analyze.regress.scenario import recording, typed
    with RuncContainer(pod_name="web-0") as c:
        c.start(["sleep", "600"])
        with recording(out):
            proc, master = c.exec_tty(["sh"])
            typed(master, ["cat /etc/shadow", "exit"])
            proc.wait()

Needs root, bcc and (for containers) runc; see docs/regression.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fcap.errors import FcapError


class ScenarioError(FcapError):
    """A scenario could not perform or record its activity."""

    exit_code = 3


def fcap_command() -> list[str]:
    """How to run this fcap (the same interpreter, ``-m fcap``)."""
    return [sys.executable, "-m", "fcap"]


class _PtyLog:
    """The recorder's stderr on a pty (so it shows its status line), read by a thread."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.data += chunk

    def contains(self, marker: bytes) -> bool:
        with self._lock:
            return marker in self.data

    def text(self) -> str:
        with self._lock:
            return bytes(self.data).decode(errors="replace").replace("\r", "\n")

    def close(self) -> None:
        for fd in (self.slave, self.master):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._thread.join(timeout=2)


@contextlib.contextmanager
def recording(
    out: Path,
    *,
    args: Sequence[str] = (),
    tree: int | None = -1,
    settle: float = 0.5,
    timeout: float = 120.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``fcap record -o OUT ARGS`` around the block; stop it with SIGINT afterwards.

    ``tree`` limits the recording to a process and its descendants
    (``--pid``); the default -1 means this scenario process, so the sample
    holds the scenario's activity and not whatever else the machine does;
    None records the whole host. The recorder's stderr is a pty, so it prints
    its status line once its loop runs (probes attached, snapshot taken,
    signal handlers set): the block starts after the first status line.
    """
    out = Path(out)
    if tree is not None:
        args = ("--pid", str(os.getpid() if tree == -1 else tree), *args)
    log = _PtyLog()
    cmd = [*fcap_command(), "record", "-o", str(out), *args]
    proc = subprocess.Popen(cmd, stdout=log.slave, stderr=log.slave, stdin=subprocess.DEVNULL)

    def fail(why: str) -> ScenarioError:
        return ScenarioError(f"fcap record {why}: {' '.join(cmd)}\n{log.text()[-2000:]}")

    try:
        deadline = time.monotonic() + timeout
        while not log.contains(b"fcap: "):
            if proc.poll() is not None:
                raise fail(f"exited with {proc.returncode} before recording")
            if time.monotonic() > deadline:
                raise fail("did not start in time")
            time.sleep(0.1)
        time.sleep(settle)
        yield proc
        time.sleep(settle)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise fail("did not stop on SIGINT") from None
        time.sleep(0.1)
        log.close()
    if proc.returncode not in (0, -signal.SIGINT, 130):
        raise fail(f"exited with {proc.returncode}")
    if not out.exists():
        raise fail(f"wrote no {out}")


def drain(fd: int, seconds: float = 0.3) -> bytes:
    """Read whatever a pty master has to say within ``seconds``."""
    data = b""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def typed(master: int, lines: Sequence[str], *, pause: float = 0.4) -> bytes:
    """Type ``lines`` into a terminal (pty master), as a person would; return the screen text."""
    screen = drain(master, 0.8)  # the prompt
    for line in lines:
        for ch in line:
            os.write(master, ch.encode())
            time.sleep(0.01)
        os.write(master, b"\r")
        screen += drain(master, pause)
    if os.environ.get("FCAP_SCENARIO_VERBOSE"):
        sys.stderr.write(screen.decode(errors="replace") + "\n")
    return screen


def _take_terminal() -> None:
    """In the child: make stdin (the pty slave) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def host_shell(argv: Sequence[str] = ("bash", "--norc", "-i")) -> tuple[subprocess.Popen[bytes], int]:
    """An interactive shell on the host on a new pty (its controlling terminal)."""
    master, slave = os.openpty()
    env = {**os.environ, "PS1": "$ ", "TERM": "xterm", "HISTFILE": "/dev/null"}
    proc = subprocess.Popen(
        list(argv), stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env,
        preexec_fn=_take_terminal,
    )
    os.close(slave)
    return proc, master


def finish(proc: Any, master: int, timeout: float = 10) -> None:
    """Wait for a terminal process (a Popen or a runc TtyProcess) and close its pty master."""
    try:
        proc.wait(timeout=timeout)
    finally:
        with contextlib.suppress(OSError):
            os.close(master)


def main_out() -> Path:
    """The scenario's output path from argv (``scenario.py OUT.parquet``)."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.parquet   (run as root; records with fcap record)")
    return Path(sys.argv[1]).resolve()
