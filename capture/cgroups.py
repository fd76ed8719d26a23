"""Cgroups: container ids from cgroup paths, and cgroup v2 ids to paths.

Container ids are recognised in cgroup paths the way Falco's container engines
do (libsinsp ``matches_runc_cgroup`` layouts and the container plugin): the
last path component is ``<prefix><64 hex><suffix>`` with (prefix, suffix) one
of ``("", "")`` (``/kubepods/besteffort/pod<uid>/<id>``, ``/docker/<id>``,
containerd non-systemd), ``("docker-", ".scope")``, ``("cri-containerd-",
".scope")``, ``("crio-", ".scope")`` / ``("crio-", "")``, ``("libpod-",
".scope")`` (podman), or the systemd-driver form ``...slice:cri-containerd:<id>``
(also ``:crio:`` / ``:docker:``). We keep the full 64-hex id; Falco's
``container.id`` is its first 12 characters.

:class:`CgroupIndex` maps cgroup v2 ids (the inode numbers of directories in
the cgroup2 hierarchy, what ``bpf_get_current_cgroup_id()`` returns) to paths
and container ids; ``lookup()`` is vectorized and rescans (rate-limited) when
an unknown id shows up.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from fcap.schema import CGROUPS

_ID = r"([0-9a-f]{64})"
_PATTERNS = [
    re.compile(r"(?:^|/)" + _ID + r"$"),
    re.compile(r"(?:^|/)(?:docker|cri-containerd|crio|libpod)-" + _ID + r"\.scope$"),
    re.compile(r"(?:^|/)crio-" + _ID + r"$"),
    re.compile(r":(?:cri-containerd|crio|docker):" + _ID + r"$"),
]


def container_id_from_cgroup(path: str | None) -> str | None:
    """The full container id encoded in a cgroup path, or None (host)."""
    if not path:
        return None
    path = path.rstrip("/")
    if path.endswith("/init.scope") and "docker-" in path:
        path = path[: -len("/init.scope")]
    for pat in _PATTERNS:
        m = pat.search(path)
        if m:
            return m.group(1)
    return None


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/PID/cgroup`` as {controller(s) or '' for v2: path}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[parts[1]] = parts[2]
    return out


def pick_cgroup(cgroups: dict[str, str]) -> str | None:
    """The most telling cgroup path: v2 when not '/', else pids/memory/any v1 path."""
    v2 = cgroups.get("")
    if v2 and v2 != "/":
        return v2
    for key in ("pids", "memory", "cpu,cpuacct", "cpu", "name=systemd"):
        p = cgroups.get(key)
        if p and p != "/":
            return p
    for p in cgroups.values():
        if p and p != "/":
            return p
    return v2 or (next(iter(cgroups.values()), None))


def cgroup2_mount() -> Path | None:
    """Where the cgroup2 hierarchy is mounted (unified or hybrid), or None."""
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return Path(left.split()[4])
    except OSError:
        pass
    for cand in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (cand / "cgroup.controllers").exists():
            return cand
    return None


def scan_cgroup2(root: Path | None = None) -> dict[int, str]:
    """{cgroup id (directory inode): path relative to the cgroup2 root ('/' for the root)}."""
    root = root or cgroup2_mount()
    if root is None:
        return {}
    out: dict[int, str] = {}
    base = str(root)
    for dirpath, _dirs, _files in os.walk(base):
        try:
            ino = os.stat(dirpath).st_ino
        except OSError:
            continue
        rel = dirpath[len(base):] or "/"
        out[ino] = rel
    return out


class CgroupIndex:
    """cgroup v2 id -> (path, container id), rescanned when unknown ids appear."""

    def __init__(self, root: Path | None = None, *, min_rescan_interval: float = 1.0) -> None:
        self.root = root if root is not None else cgroup2_mount()
        self.min_rescan_interval = min_rescan_interval
        self._last_scan = 0.0
        self.paths: dict[int, str] = {}
        self.containers: dict[int, str | None] = {}
        self._new: set[int] = set()
        self.rescan()
        self._new.clear()

    def due(self) -> bool:
        """True when a rescan is allowed by the rate limit."""
        return time.monotonic() - self._last_scan >= self.min_rescan_interval

    def rescan(self) -> None:
        """Walk the cgroup2 hierarchy again (ids already known keep their paths)."""
        self._last_scan = time.monotonic()
        for cid, path in scan_cgroup2(self.root).items():
            if cid not in self.paths:
                self.paths[cid] = path
                self.containers[cid] = container_id_from_cgroup(path)
                self._new.add(cid)

    def lookup(self, cgroup_ids: np.ndarray) -> pa.Array:
        """Container ids (string, null on the host or when unknown) for an array of cgroup ids."""
        ids = np.asarray(cgroup_ids, dtype=np.uint64)
        if ids.size == 0:
            return pa.array([], pa.string())
        uniq, inverse = np.unique(ids, return_inverse=True)
        missing = [int(u) for u in uniq if int(u) not in self.paths]
        if missing and self.due():
            self.rescan()
        values = pa.array([self.containers.get(int(u)) for u in uniq], pa.string())
        return values.take(pa.array(inverse.astype(np.int64).ravel()))

    def lookup_paths(self, cgroup_ids: np.ndarray) -> pa.Array:
        """Cgroup paths for an array of cgroup ids (null when unknown)."""
        ids = np.asarray(cgroup_ids, dtype=np.uint64)
        uniq, inverse = np.unique(ids, return_inverse=True)
        values = pa.array([self.paths.get(int(u)) for u in uniq], pa.string())
        return values.take(pa.array(inverse.astype(np.int64).ravel()))

    def table(self) -> pa.Table:
        """The CGROUPS side table of every id seen."""
        ids = sorted(self.paths)
        return pa.table(
            {"id": pa.array(ids, pa.uint64()),
             "path": pa.array([self.paths[i] for i in ids], pa.string()),
             "container_id": pa.array([self.containers[i] for i in ids], pa.string())},
            schema=CGROUPS,
        )

    def take_new(self) -> pa.Table:
        """CGROUPS rows found since the last call (for ``CaptureWriter.update_side_table``)."""
        ids = sorted(self._new)
        self._new.clear()
        return pa.table(
            {"id": pa.array(ids, pa.uint64()),
             "path": pa.array([self.paths[i] for i in ids], pa.string()),
             "container_id": pa.array([self.containers[i] for i in ids], pa.string())},
            schema=CGROUPS,
        )
