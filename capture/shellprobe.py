"""ShellProbe: every line typed into bash/sh/ash, on the host and in containers.

Integration contract (the recorder creates one unless ``--no-shell``)::

    probe = ShellProbe()          # or ShellProbe(comms=...) to change the shell list
    probe.start()                 # compiles bpf/shell.c, attaches; raises PrerequisiteError
    ...
    batch = probe.drain()         # call on the recorder's timer (>= 1/s); returns
                                  # pa.RecordBatch of fcap.schema.EVENTS or None
    ...
    probe.drain(); probe.stop()   # final drain, then detach
    probe.lost                    # records the kernel could not queue (ring buffer full)

Rows have ``syscall`` = ``shell_line`` (``text`` = the line, without its
newline) or ``shell_line_withheld`` (no text: input read while the terminal's
ECHO was off). Filled columns: ts (wall clock), cpu, pid, tid, ppid, uid, gid,
loginuid, tty (``new_encode_dev``), sid, pgid, comm, cgroup_id, syscall, text,
flags_aux (how the line was obtained, :mod:`fcap.capture.shell_decode`
``FLAG_*``). ``container_id`` is left null: the recorder fills it in bulk from
``cgroup_id`` like for every other row. Rows are in time order within a batch,
not merged with the recorder's own batches.

How lines are captured (details in ``bpf/shell.c``):

* bash: a uprobe/uretprobe pair on ``readline`` in the bash binary (bash on
  Debian links readline statically; the symbol is exported) or, when the binary
  lacks it, in the ``libreadline.so`` the process maps. Uprobes attach per
  file (inode), so each distinct bash binary is attached once: at start for
  every running shell (scan of ``/proc/*/exe``), later when a
  ``sched_process_exec`` of a shell is reported (drained with the lines, so the
  attach happens within one drain period plus bcc's attach time, ~10-50 ms).
  Container binaries are reached through ``/proc/PID/root/<exe path>``.
  During that window nothing is lost: until the uprobe is in, bash's
  keystroke reads go through the terminal-read path below (flagged
  ``FLAG_KEYSTROKES``); a line whose readline() entry was missed is recorded
  only by that path, never twice.
* shells without readline (dash, busybox ash, ``read`` builtins): the bytes a
  process whose comm is a shell reads from a terminal (character device with a
  tty major, checked on the inode via BTF offsets): whole lines in canonical
  mode, keystrokes in raw mode (busybox line editing), assembled into lines in
  userspace (:class:`fcap.capture.shell_decode.LineAssembler`).
* echo off: the probe checks the terminal's termios ``c_lflag`` at the read
  (and for readline at its return, after readline restored the terminal); a
  canonical read with ECHO off is a password prompt: the kernel sends only a
  marker, never the bytes.

Draining: bcc's ring-buffer callback runs once per record, and only copies the
record's bytes into a list; decoding is numpy over the whole batch. That is
acceptable here because records exist only for shells reading a terminal:
human typing rate (a line per canonical read, a keystroke per raw read), not
syscall rate.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from fcap.capture.shell_btf import shell_offsets
from fcap.capture.shell_decode import K_EXEC, LineAssembler, split_records

from fcap.errors import PrerequisiteError

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"

#: comm values treated as interactive shells.
DEFAULT_SHELL_COMMS: tuple[str, ...] = (
    "bash", "rbash", "sh", "dash", "ash", "busybox", "zsh", "ksh", "ksh93", "mksh",
    "pdksh", "yash", "fish", "tcsh", "csh",
)  # fmt: skip
READLINE_COMMS = ("bash", "rbash", "sh")


@dataclass
class ShellProbe:
    """The shell-input probe; see the module docstring for the contract."""

    comms: tuple[str, ...] = DEFAULT_SHELL_COMMS
    ringbuf_pages: int = 64
    _bpf: object = None
    _records: list[bytes] = field(default_factory=list)
    _attached: dict[tuple[int, int], str] = field(default_factory=dict)  # (dev, ino) -> path
    _no_readline: set[tuple[int, int]] = field(default_factory=set)
    _asm: LineAssembler = field(default_factory=LineAssembler)
    _pending: dict[int, tuple[bytes, int]] = field(default_factory=dict)

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Compile and load bpf/shell.c, attach to running shells."""
        if os.geteuid() != 0:
            raise PrerequisiteError("the shell probe needs root", hint="run fcap record as root")
        try:
            from bcc import BPF
        except ImportError as err:
            raise PrerequisiteError(
                "bcc is not importable", hint="run scripts/setup.sh (Debian python3-bpfcc)"
            ) from err
        cflags = [f"-I{BPF_DIR}", f"-DRINGBUF_PAGES={self.ringbuf_pages}", "-Wno-macro-redefined"]
        cflags += [f"-D{k}={v}" for k, v in shell_offsets().items()]
        try:
            self._bpf = BPF(src_file=str(BPF_DIR / "shell.c").encode(), cflags=cflags)
        except Exception as err:  # bcc raises bare Exception on compile/load failure
            raise PrerequisiteError(f"cannot load the shell probe: {err}") from err
        key_t = self._bpf["shell_comms"].Key
        for c in self.comms:
            k = key_t()
            k.comm = c.encode()[:15]
            self._bpf["shell_comms"][k] = ctypes.c_uint8(1)
        self._asm.wall_offset_ns = time.clock_gettime_ns(time.CLOCK_REALTIME) - (
            time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        )
        self._bpf["shell_events"].open_ring_buffer(self._on_record)
        for pid in _running_shells(self.comms):
            self._attach_pid(pid)

    def drain(self) -> pa.RecordBatch | None:
        """Collect the records queued since the last call; return finished lines."""
        if self._bpf is None:
            return None
        self._bpf.ring_buffer_consume()
        blobs, self._records = self._records, []
        heads, data = split_records(blobs)
        if heads.size == 0:
            return None
        self._handle_execs(heads, data)
        return self._asm.feed(heads, data)

    def stop(self) -> None:
        """Detach everything (call :meth:`drain` first to keep the last lines)."""
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    @property
    def lost(self) -> int:
        """Records dropped in the kernel because the ring buffer was full."""
        if self._bpf is None:
            return 0
        return int(self._bpf["lost"][ctypes.c_int(0)].value)

    @property
    def attached(self) -> dict[tuple[int, int], str]:
        """Binaries (dev, inode) -> path with readline probes attached."""
        return dict(self._attached)

    # ---- internals ---------------------------------------------------------

    def _handle_execs(self, heads: object, data: list[bytes]) -> None:
        """Attach to the binaries of newly exec'd shells, once per binary.

        The kernel reports an exec only while the binary (inode, device) is not in
        ``known_exe``; after deciding (attached, or no readline) userspace adds it,
        so a storm of ``sh -c`` execs costs one record per binary and drain period.
        """
        todo = list(self._pending.items())  # retries: loader had not mapped libs yet
        self._pending = {}
        idx = np.flatnonzero(heads["kind"] == K_EXEC)
        todo += [(int(heads["pid"][i]), (data[i][:16], 0)) for i in idx]
        seen: set[bytes] = set()
        for pid, (key, tries) in todo:
            if len(key) < 16 or key in seen:
                continue
            seen.add(key)
            verdict = self._attach_pid(pid)
            if verdict is True:
                kt = self._bpf["known_exe"].Key.from_buffer_copy(key)
                self._bpf["known_exe"][kt] = ctypes.c_uint8(1)
            elif verdict is None and tries < 20:
                self._pending[pid] = (key, tries + 1)

    def _on_record(self, _ctx: int, data: int, size: int) -> None:
        self._records.append(ctypes.string_at(data, size))

    def _attach_pid(self, pid: int) -> bool | None:
        """Attach readline probes to the binary (or libreadline) process ``pid`` runs.

        True: decided (attached, or the binary has no readline); False: the process
        is gone; None: ask again later (a dynamic binary whose libraries are not
        mapped yet, right after exec)."""
        try:
            st = os.stat(f"/proc/{pid}/exe")
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False  # gone already, or a kernel thread
        key = (st.st_dev, st.st_ino)
        if key in self._attached or key in self._no_readline:
            return True
        # a deleted (upgraded) binary has no path: its /proc/PID/exe magic link still
        # opens it, for bcc's symbol lookup and for the kernel's uprobe
        path = _host_path(pid, exe) or f"/proc/{pid}/exe"
        if self._attach_file(path, key):
            return True
        lib = _mapped_readline(pid)
        if lib is None and not _libc_mapped(pid):
            return None  # the dynamic loader has not run yet
        if lib is not None:
            try:
                lst = os.stat(lib)
            except OSError:
                return False
            lkey = (lst.st_dev, lst.st_ino)
            fresh = lkey not in self._attached and lkey not in self._no_readline
            if fresh and not self._attach_file(lib, lkey):
                self._no_readline.add(lkey)
        self._no_readline.add(key)
        return True

    def _attach_file(self, path: str, key: tuple[int, int]) -> bool:
        b = self._bpf
        try:
            b.attach_uprobe(name=path.encode(), sym=b"readline", fn_name=b"rl_enter")
        except Exception:
            return False
        try:
            b.attach_uretprobe(name=path.encode(), sym=b"readline", fn_name=b"rl_return")
        except Exception:
            b.detach_uprobe(name=path.encode(), sym=b"readline")
            return False
        self._attached[key] = path
        return True


def _host_path(pid: int, exe: str) -> str | None:
    """A path to process ``pid``'s executable that is valid in our mount namespace."""
    if exe.endswith(" (deleted)"):
        return None
    try:
        same_ns = os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        return None
    return exe if same_ns else f"/proc/{pid}/root{exe}"


def _mapped_readline(pid: int) -> str | None:
    """The libreadline.so process ``pid`` maps, as a host path, if any."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and "/libreadline.so" in parts[5]:
                    return _host_path(pid, parts[5].strip())
    except OSError:
        return None
    return None


def _libc_mapped(pid: int) -> bool:
    """True once process ``pid`` maps libc (its dynamic loader ran), or it is static."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
    except OSError:
        return True
    return "/libc" in maps or "ld-musl" in maps or "ld-linux" not in maps


def _running_shells(comms: tuple[str, ...]) -> list[int]:
    """Pids of running processes whose comm is a shell."""
    want = set(comms)
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() in want:
                    out.append(int(d))
        except OSError:
            continue
    return out
