"""The container table, from the runtimes' on-disk state (no daemon API calls).

Sources, merged per container id:

* runc state dirs ``<root>/<id>/state.json`` for the roots in
  :data:`STATE_ROOTS` (runc's default ``/run/runc``, containerd's
  ``/run/containerd/runc/<namespace>``, docker's ``/run/docker/runtime-runc/moby``);
  they give the init pid, creation time, cgroup path, rootfs and the bundle;
* the OCI bundle's ``config.json`` (the state's ``bundle=`` label, or
  containerd's ``/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>``):
  CRI annotations (``io.kubernetes.cri.container-name``, ``image-name``,
  ``sandbox-name``, ``sandbox-namespace``, ``sandbox-uid``, ``sandbox-id``,
  ``container-type``; CRI-O's ``io.kubernetes.cri-o.*``), mounts, capabilities
  and device rules (``privileged`` = every capability in the bounding set, or
  all devices allowed);
* docker's ``/var/lib/docker/containers/<id>/config.v2.json`` when readable
  (name, image, labels).

:class:`ContainerResolver` adds the cgroup side: cgroup v2 id -> container id
(vectorized) and a cheap periodic rescan that hands new rows to the writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.capture.cgroups import CgroupIndex, container_id_from_cgroup

from fcap.schema import CONTAINERS

STATE_ROOTS: tuple[str, ...] = (
    "/run/runc",
    "/run/containerd/runc/*",
    "/run/docker/runtime-runc/*",
    "/run/crun",
)
CONTAINERD_TASKS = "/run/containerd/io.containerd.runtime.v2.task"
DOCKER_CONTAINERS = "/var/lib/docker/containers"

CRI = "io.kubernetes.cri."
CRIO = "io.kubernetes.cri-o."


@dataclass(frozen=True)
class ContainerInfo:
    """One container row plus where its rootfs is (for users/groups)."""

    row: dict[str, Any]
    rootfs: str | None


def parse_rfc3339_ns(text: str | None) -> int | None:
    """RFC 3339 timestamp (nanosecond fraction allowed) -> ns since the epoch."""
    if not text:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text.strip())
    if not m:
        return None
    import calendar

    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = int(((m.group(2) or ".0")[1:] + "000000000")[:9])
    tz = m.group(3) or "Z"
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 10**9 + frac


def _load_json(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _cap_count() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1
    except (OSError, ValueError):
        return 41


def is_privileged(config: dict | None) -> bool | None:
    """Privileged as Kubernetes grants it: all capabilities, or all devices allowed."""
    if not config:
        return None
    caps = (config.get("process") or {}).get("capabilities") or {}
    bounding = set(caps.get("bounding") or [])
    if len(bounding) >= _cap_count():
        return True
    devices = ((config.get("linux") or {}).get("resources") or {}).get("devices") or []
    for d in devices:
        if (d.get("allow") and d.get("type") in (None, "a") and d.get("major") is None
                and d.get("minor") is None and "rwm" in (d.get("access") or "rwm")):
            return True
    return False


def mounts_of(config: dict | None) -> list[dict[str, Any]]:
    """MOUNTS rows from an OCI config's mounts."""
    out = []
    for m in (config or {}).get("mounts") or []:
        opts = m.get("options") or []
        prop = next((o for o in opts if o in ("rprivate", "private", "rshared", "shared",
                                               "rslave", "slave")), None)
        out.append({"source": m.get("source"), "dest": m.get("destination"),
                    "mode": ",".join(opts) or None, "rw": "ro" not in opts,
                    "propagation": prop})
    return out


def _labels_dict(labels: Iterable[str] | None) -> dict[str, str]:
    out = {}
    for item in labels or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def _runtime_type(root: str, annotations: dict[str, str]) -> tuple[str, str]:
    """(runtime, Falco container.type) from the state root and annotations."""
    if any(k.startswith(CRIO) for k in annotations):
        return "runc", "cri-o"
    if "/containerd/" in root:
        return "runc", "containerd"
    if "/docker/" in root:
        return "runc", "docker"
    if root.endswith("crun"):
        return "crun", "cri-o" if any(k.startswith(CRIO) for k in annotations) else "crun"
    if any(k.startswith(CRI) for k in annotations):
        return "runc", "containerd"
    return "runc", "runc"


def _state_dirs(roots: Iterable[str]) -> Iterable[tuple[str, Path]]:
    import glob

    for pattern in roots:
        for root in sorted(glob.glob(pattern)):
            try:
                entries = os.listdir(root)
            except OSError:
                continue
            for e in entries:
                d = Path(root) / e
                if (d / "state.json").is_file():
                    yield root, d


def read_container(root: str, state_dir: Path, now_ns: int) -> ContainerInfo | None:
    """One container from a runc state dir (plus its bundle config.json)."""
    state = _load_json(state_dir / "state.json")
    if not state or not state.get("id"):
        return None
    cid = str(state["id"])
    cfg = state.get("config") or {}
    labels = _labels_dict(cfg.get("labels"))
    bundle = labels.get("bundle")
    config = _load_json(Path(bundle) / "config.json") if bundle else None
    if config is None:
        ns = Path(root).name
        config = _load_json(Path(CONTAINERD_TASKS) / ns / cid / "config.json")
        if config is not None and not bundle:
            bundle = str(Path(CONTAINERD_TASKS) / ns / cid)
    annotations = dict((config or {}).get("annotations") or {})
    if not annotations:
        annotations = {k: v for k, v in labels.items() if k != "bundle"}
    runtime, ctype = _runtime_type(root, annotations)
    cg = (cfg.get("cgroups") or {})
    cgroup = cg.get("path") or None
    if cgroup is None:
        name, parent = cg.get("name"), cg.get("parent")
        if name:
            cgroup = f"{parent or ''}/{name}"
    docker = _load_json(Path(DOCKER_CONTAINERS) / cid / "config.v2.json") or {}
    dcfg = docker.get("Config") or {}
    name = (annotations.get(CRI + "container-name") or annotations.get(CRIO + "ContainerName")
            or (docker.get("Name") or "").lstrip("/") or None)
    image = (annotations.get(CRI + "image-name") or annotations.get(CRIO + "ImageName")
             or dcfg.get("Image") or None)
    pod_name = annotations.get(CRI + "sandbox-name") or annotations.get("io.kubernetes.pod.name")
    pod_ns = (annotations.get(CRI + "sandbox-namespace")
              or annotations.get("io.kubernetes.pod.namespace"))
    pod_uid = annotations.get(CRI + "sandbox-uid") or annotations.get("io.kubernetes.pod.uid")
    sandbox = annotations.get(CRI + "sandbox-id") or annotations.get(CRIO + "SandboxID")
    rootfs = cfg.get("rootfs")
    if not rootfs and config and bundle:
        rp = (config.get("root") or {}).get("path")
        if rp:
            rootfs = rp if rp.startswith("/") else str(Path(bundle) / rp)
    row = {
        "id": cid,
        "name": name,
        "image": image,
        "image_id": docker.get("Image") or annotations.get(CRIO + "ImageRef"),
        "runtime": runtime,
        "type": ctype,
        "privileged": is_privileged(config),
        "pid": state.get("init_process_pid"),
        "start_ts": parse_rfc3339_ns(state.get("created")),
        "cgroup": cgroup,
        "bundle": bundle,
        "pod_name": pod_name,
        "pod_namespace": pod_ns,
        "pod_uid": pod_uid,
        "pod_sandbox_id": sandbox,
        "labels": list((dcfg.get("Labels") or {}).items()),
        "annotations": list(annotations.items()),
        "mounts": mounts_of(config) or None,
        "first_seen_ts": now_ns,
    }
    return ContainerInfo(row, rootfs)


def scan_containers(roots: Iterable[str] = STATE_ROOTS) -> list[ContainerInfo]:
    """Every container with runc-format state under ``roots``."""
    now = time.time_ns()
    out: dict[str, ContainerInfo] = {}
    for root, d in _state_dirs(roots):
        with contextlib.suppress(Exception):
            info = read_container(root, d, now)
            if info is not None and info.row["id"] not in out:
                out[info.row["id"]] = info
    return list(out.values())


def containers_table(infos: Iterable[ContainerInfo]) -> pa.Table:
    """The CONTAINERS table of ``infos``."""
    return pa.Table.from_pylist([i.row for i in infos], schema=CONTAINERS)


class ContainerResolver:
    """cgroup v2 id -> container id, and the container table, kept fresh while recording.

    The recorder resolves each decoded batch's ``cgroup_id`` column (:meth:`lookup`
    or the index directly) and, about once a second, calls :meth:`poll`: every
    non-empty table it returns goes to ``CaptureWriter.update_side_table``.
    Rows discovered by any call are queued until a poll hands them out.
    """

    def __init__(self, roots: Iterable[str] = STATE_ROOTS, cgroup_root: Path | None = None,
                 *, min_rescan_interval: float = 1.0) -> None:
        self.roots = tuple(roots)
        self.index = CgroupIndex(cgroup_root, min_rescan_interval=min_rescan_interval)
        self.known: dict[str, ContainerInfo] = {}
        self._unseen: list[ContainerInfo] = []
        self.min_rescan_interval = min_rescan_interval
        self._last = 0.0
        self.refresh(force=True)
        self._unseen.clear()

    def lookup(self, cgroup_ids: np.ndarray) -> pa.Array:
        """Container ids for cgroup ids (vectorized; rescans on unknown ids, rate-limited)."""
        before = len(self.index.paths)
        out = self.index.lookup(cgroup_ids)
        if len(self.index.paths) != before:
            self.refresh()
        return out

    def refresh(self, *, force: bool = False) -> pa.Table:
        """Rescan runtime state; return CONTAINERS rows not seen before.

        The rows also stay queued for :meth:`poll`, which is the one call that
        hands rows out (to ``CaptureWriter.update_side_table``), whichever call
        (:meth:`lookup`, :meth:`refresh`, :meth:`poll`) discovered them.
        """
        now = time.monotonic()
        if not force and now - self._last < self.min_rescan_interval:
            return CONTAINERS.empty_table()
        self._last = now
        new = []
        for info in scan_containers(self.roots):
            cid = info.row["id"]
            if cid not in self.known:
                self.known[cid] = info
                new.append(info)
                self._unseen.append(info)
        return containers_table(new)

    def poll(self) -> dict[str, pa.Table]:
        """Side-table rows not handed out yet (rate-limited rescan first).

        Containers and cgroups found by any call since the last poll (a
        :meth:`lookup` on an unknown cgroup id rescans too) are all reported,
        so a short-lived container seen only by ``lookup`` is not lost.

        Returns ``{"containers": ..., "users": ..., "groups": ..., "cgroups": ...}``
        with only the non-empty tables: hand each to
        ``CaptureWriter.update_side_table(name, table)``. Users and groups come
        from the new containers' rootfs when readable.
        """
        from fcap.capture.accounts import read_accounts

        out: dict[str, pa.Table] = {}
        self.refresh()
        unseen, self._unseen = self._unseen, []
        new = containers_table(unseen)
        if new.num_rows or self.index.due():
            self.index.rescan()
        if new.num_rows:
            out["containers"] = new
            ids = set(new.column("id").to_pylist())
            roots = [(cid, p) for cid, p in self.rootfs() if cid in ids]
            if roots:
                users, groups = read_accounts(Path("/nonexistent-host-root"), roots)
                if users.num_rows:
                    out["users"] = users
                if groups.num_rows:
                    out["groups"] = groups
        cg = self.new_cgroups()
        if cg.num_rows:
            out["cgroups"] = cg
        return out

    def table(self) -> pa.Table:
        """Every container seen."""
        return containers_table(self.known.values())

    def rootfs(self) -> list[tuple[str, Path]]:
        """(container id, rootfs) pairs whose rootfs is readable (for users/groups)."""
        return [(cid, Path(i.rootfs)) for cid, i in self.known.items()
                if i.rootfs and Path(i.rootfs).is_dir()]

    def new_cgroups(self) -> pa.Table:
        """CGROUPS rows found since the last call."""
        return self.index.take_new()

    def container_of_path(self, cgroup_path: str) -> str | None:
        """Container id for a cgroup path (pattern match; no runtime state needed)."""
        return container_id_from_cgroup(cgroup_path)
