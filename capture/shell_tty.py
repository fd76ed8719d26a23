"""Drive an interactive program through a pseudo-terminal (tests, sample scripts).

:class:`PtySession` starts a program on a new pty as its controlling terminal
(``setsid`` + ``TIOCSCTTY``), like a login or ``kubectl exec -it`` would, and
lets a script type into it and wait for output, as a person at a keyboard.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import subprocess
import termios
import time
from collections.abc import Sequence


class PtySession:
    """A program running on its own pty; ``type``/``expect`` talk to it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        master_fd: int | None = None,
        proc: subprocess.Popen | None = None,
    ) -> None:
        self.output = b""
        self._mark = 0  # expect() searches the output after the previous match
        if master_fd is not None:  # an already running program (e.g. runc --console-socket)
            self.master, self.proc = master_fd, proc
            return
        self.master, slave = os.openpty()

        def _ctty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_ctty,
            close_fds=True,
        )
        os.close(slave)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def read_some(self, timeout: float = 0.1) -> bytes:
        """Read what the program printed within ``timeout`` seconds."""
        got = b""
        r, _, _ = select.select([self.master], [], [], timeout)
        if r:
            try:
                got = os.read(self.master, 65536)
            except OSError:
                got = b""
        self.output += got
        return got

    def expect(self, pattern: str | bytes, timeout: float = 10.0) -> None:
        """Wait until the output since the last expect matches ``pattern``."""
        pat = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = pat.search(self.output, self._mark)
            if m:
                self._mark = m.end()
                return
            self.read_some(0.05)
        raise TimeoutError(f"no {pat.pattern!r} within {timeout}s; output: {self.output[-500:]!r}")

    def type(self, text: str, *, per_key: float = 0.0) -> None:
        """Type ``text`` (all at once, or one key every ``per_key`` seconds)."""
        data = text.encode()
        if per_key <= 0:
            os.write(self.master, data)
            return
        for i in range(len(data)):
            os.write(self.master, data[i : i + 1])
            time.sleep(per_key)
            self.read_some(0)

    def close(self, timeout: float = 5.0) -> None:
        """Hang up the terminal and wait for the program to end."""
        with contextlib.suppress(OSError):
            os.close(self.master)
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
