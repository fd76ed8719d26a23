"""Container scanning (fake runtime state, and a real runc container), cgroup parsing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from fcap.capture.accounts import read_accounts
from fcap.capture.cgroups import CgroupIndex, container_id_from_cgroup, pick_cgroup
from fcap.capture.containers import (
    ContainerResolver,
    containers_table,
    is_privileged,
    parse_rfc3339_ns,
    scan_containers,
)
from fcap.capture.runc import RuncContainer, make_config
from fcap.capture.snapshot import take_snapshot

from fcap.schema import CONTAINERS

CID = "3e4ab0f17f122256c3d44a01e39a11afdff2ab01d3beac8bb32a3a6b454dc5ba"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/kubepods/besteffort/pod1234-ab/{CID}", CID),
        (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-{CID}.scope", CID),
        (f"/system.slice/docker-{CID}.scope", CID),
        (f"/docker/{CID}", CID),
        (f"/kubepods.slice/kubepods-pod1.slice/crio-{CID}.scope", CID),
        (f"/machine.slice/libpod-{CID}.scope", CID),
        (f"/kubepods-besteffort-pod1.slice:cri-containerd:{CID}", CID),
        ("/user.slice/user-0.slice/session-3.scope", None),
        ("/", None),
        (f"/kubepods/besteffort/pod1234/{CID[:60]}", None),
        (f"/system.slice/crio-conmon-{CID}.scope", None),
    ],
)
def test_container_id_from_cgroup(path: str, expected: str | None) -> None:
    assert container_id_from_cgroup(path) == expected


def test_pick_cgroup_prefers_v2_then_v1() -> None:
    assert pick_cgroup({"": "/a/b", "memory": "/m"}) == "/a/b"
    assert pick_cgroup({"": "/", "memory": "/m", "pids": "/p"}) == "/p"
    assert pick_cgroup({"": "/"}) == "/"


def fake_state(root: Path, bundle: Path, *, privileged: bool = False) -> None:
    (bundle / "rootfs" / "etc").mkdir(parents=True)
    (bundle / "rootfs/etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:101:101::/:/bin/false\n")
    (bundle / "rootfs/etc/group").write_text("root:x:0:\nweb:x:101:\n")
    ann = {"io.kubernetes.cri.container-type": "container",
           "io.kubernetes.cri.container-name": "nginx",
           "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25",
           "io.kubernetes.cri.sandbox-id": "f" * 64,
           "io.kubernetes.cri.sandbox-name": "web-7d9",
           "io.kubernetes.cri.sandbox-namespace": "shop",
           "io.kubernetes.cri.sandbox-uid": "1111-2222"}
    cfg = make_config(["nginx"], cgroups_path=f"/kubepods/besteffort/pod1111-2222/{CID}",
                      annotations=ann, privileged=privileged)
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": "/srv/data",
                          "options": ["rbind", "ro", "rprivate"]})
    (bundle / "config.json").write_text(json.dumps(cfg))
    d = root / CID
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({
        "id": CID, "init_process_pid": 4242, "created": "2026-11-22T20:09:08.821888770Z",
        "config": {"rootfs": str(bundle / "rootfs"),
                   "labels": [f"bundle={bundle}", "io.kubernetes.cri.container-name=nginx"],
                   "cgroups": {"path": f"/kubepods/besteffort/pod1111-2222/{CID}"}},
    }))


def test_scan_fake_runc_state(tmp_path: Path) -> None:
    root = tmp_path / "run" / "containerd" / "runc" / "k8s.io"
    fake_state(root, tmp_path / "bundle")
    infos = scan_containers([str(tmp_path / "run/containerd/runc/*")])
    assert len(infos) == 1
    t = containers_table(infos)
    assert t.schema.equals(CONTAINERS)
    r = t.to_pylist()[0]
    assert r["id"] == CID and r["name"] == "nginx" and r["image"] == "docker.io/library/nginx:1.25"
    assert (r["pod_name"], r["pod_namespace"], r["pod_uid"]) == ("web-7d9", "shop", "1111-2222")
    assert r["pod_sandbox_id"] == "f" * 64 and r["pid"] == 4242
    assert r["type"] == "containerd" and r["runtime"] == "runc" and r["privileged"] is False
    assert r["start_ts"] == parse_rfc3339_ns("2026-11-22T20:09:08.821888770Z")
    assert r["cgroup"].endswith(CID) and r["bundle"] == str(tmp_path / "bundle")
    data = next(m for m in r["mounts"] if m["dest"] == "/data")
    assert data == {"source": "/srv/data", "dest": "/data", "mode": "rbind,ro,rprivate",
                    "rw": False, "propagation": "rprivate"}
    assert dict(r["annotations"])["io.kubernetes.cri.container-type"] == "container"
    users, groups = read_accounts(tmp_path / "nohost", [(CID, Path(infos[0].rootfs))])
    assert users.to_pylist() == [
        {"uid": 0, "name": "root", "gid": 0, "home": "/root", "shell": "/bin/sh", "container_id": CID},
        {"uid": 101, "name": "web", "gid": 101, "home": "/", "shell": "/bin/false", "container_id": CID}]
    assert groups.num_rows == 2


def test_privileged_detection(tmp_path: Path) -> None:
    assert is_privileged(make_config(["x"], cgroups_path="/x", annotations={})) is False
    assert is_privileged(make_config(["x"], cgroups_path="/x", annotations={}, privileged=True))
    assert is_privileged(None) is None


def test_rfc3339() -> None:
    assert parse_rfc3339_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_rfc3339_ns("1970-01-01T01:00:00+01:00") == 0
    assert parse_rfc3339_ns("garbage") is None


def test_cgroup_index_fake_tree(tmp_path: Path) -> None:
    (tmp_path / "kubepods" / "besteffort" / "pod1" / CID).mkdir(parents=True)
    idx = CgroupIndex(tmp_path, min_rescan_interval=0)
    cid_ino = os.stat(tmp_path / "kubepods/besteffort/pod1" / CID).st_ino
    root_ino = os.stat(tmp_path).st_ino
    ids = np.array([cid_ino, root_ino, cid_ino, 999_999_999], np.uint64)
    assert idx.lookup(ids).to_pylist() == [CID, None, CID, None]
    assert idx.lookup_paths(ids).to_pylist()[:2] == [f"/kubepods/besteffort/pod1/{CID}", "/"]
    other = "a" * 64
    (tmp_path / "docker" / other).mkdir(parents=True)
    new_ino = os.stat(tmp_path / "docker" / other).st_ino
    assert idx.lookup(np.array([new_ino], np.uint64)).to_pylist() == [other]  # rescanned
    assert other in idx.take_new().column("container_id").to_pylist()


def test_cgroup_index_rescan_is_rate_limited(tmp_path: Path) -> None:
    idx = CgroupIndex(tmp_path, min_rescan_interval=3600)
    (tmp_path / "docker" / CID).mkdir(parents=True)
    ino = os.stat(tmp_path / "docker" / CID).st_ino
    assert idx.lookup(np.array([ino], np.uint64)).to_pylist() == [None]


@pytest.mark.live
@pytest.mark.container
def test_real_runc_container_is_found() -> None:
    with RuncContainer(pod_name="capio-pod", namespace="capio", container_name="box") as c:
        pid = c.start(["sleep", "60"])
        res = ContainerResolver(min_rescan_interval=0)
        t = res.table()
        row = t.filter(pc.equal(t["id"], c.id)).to_pylist()
        assert len(row) == 1
        r = row[0]
        assert (r["name"], r["pod_name"], r["pod_namespace"], r["pod_uid"], r["pid"]) == (
            "box", "capio-pod", "capio", c.pod_uid, pid)
        assert r["image"] == c.image and r["privileged"] is False
        assert r["cgroup"] == c.cgroups_path
        # the cgroup v2 id the kernel reports for the container's tasks
        v2 = Path("/proc") / str(pid) / "cgroup"
        rel = next(ln.split(":", 2)[2] for ln in v2.read_text().splitlines() if ln.startswith("0::"))
        ino = os.stat(str(res.index.root) + rel).st_ino
        assert res.lookup(np.array([ino, ino], np.uint64)).to_pylist() == [c.id, c.id]
        snap = take_snapshot(with_fds=False)
        p = snap.processes.filter(pc.equal(snap.processes["pid"], pid)).to_pylist()[0]
        assert p["container_id"] == c.id and p["vpid"] == 1 and p["argv"] == ["sleep", "60"]
        assert (c.id, c.rootfs) in res.rootfs()
        out = c.exec(["cat", "/etc/shadow"])
        assert out.returncode == 0 and out.stdout.startswith(b"root:")
        tty = c.exec_tty(["sh"])
        try:
            os.write(tty.master_fd, b"echo capio-$((6*7)); exit\n")
            assert b"capio-42" in tty.read_until(b"capio-42", 5)
            assert tty.wait(5)
        finally:
            tty.close()
    time.sleep(0.2)
    assert not Path("/run/runc", c.id).exists()
    assert not Path("/sys/fs/cgroup/unified" + c.cgroups_path).exists()


def test_resolver_poll_hands_new_rows(tmp_path: Path) -> None:
    state = tmp_path / "runc"
    cg = tmp_path / "cg"
    cg.mkdir()
    res = ContainerResolver([str(state)], cg, min_rescan_interval=0)
    assert res.poll() == {}
    fake_state(state, tmp_path / "bundle")
    (cg / "kubepods" / "besteffort" / "pod1111-2222" / CID).mkdir(parents=True)
    got = res.poll()
    assert got["containers"].column("id").to_pylist() == [CID]
    assert set(got["users"].column("container_id").to_pylist()) == {CID}
    assert got["groups"].num_rows == 2
    assert CID in got["cgroups"].column("container_id").to_pylist()
    assert res.poll() == {}  # nothing new the second time


def test_resolver_poll_reports_containers_found_by_lookup(tmp_path: Path) -> None:
    """A container discovered by lookup() (which rescans) is still handed out by poll()."""
    state = tmp_path / "runc"
    cg = tmp_path / "cg"
    cg.mkdir()
    res = ContainerResolver([str(state)], cg, min_rescan_interval=0)
    fake_state(state, tmp_path / "bundle")
    d = cg / "kubepods" / "besteffort" / "pod1111-2222" / CID
    d.mkdir(parents=True)
    ino = os.stat(d).st_ino
    assert res.lookup(np.array([ino], np.uint64)).to_pylist() == [CID]
    assert CID in res.table().column("id").to_pylist()
    got = res.poll()
    assert got["containers"].column("id").to_pylist() == [CID]
    assert set(got["users"].column("container_id").to_pylist()) == {CID}
    assert got["groups"].num_rows == 2
    assert CID in got["cgroups"].column("container_id").to_pylist()
    assert res.poll() == {}


def test_resolver_poll_reports_containers_found_by_refresh(tmp_path: Path) -> None:
    """refresh() called directly returns new rows, and poll() still hands them out."""
    state = tmp_path / "runc"
    res = ContainerResolver([str(state)], tmp_path, min_rescan_interval=0)
    fake_state(state, tmp_path / "bundle")
    assert res.refresh().column("id").to_pylist() == [CID]
    assert res.poll()["containers"].column("id").to_pylist() == [CID]
    assert "containers" not in res.poll()


@pytest.mark.live
@pytest.mark.container
def test_runc_foreground_run_and_cleanup() -> None:
    c = RuncContainer(container_name="fg")
    r = c.run(["sh", "-c", "echo hi-$(id -u); head -1 /etc/passwd; exit 7"])
    assert r.returncode == 7
    assert r.stdout == b"hi-0\nroot:x:0:0:root:/root:/bin/sh\n"
    assert not Path("/run/runc", c.id).exists() and c.workdir is None


@pytest.mark.live
@pytest.mark.container
def test_overlay_rootfs_exe_upper_layer() -> None:
    """A binary written into the container (upper layer) vs one from the image (lower)."""
    with RuncContainer(container_name="ovl", overlay=True) as c:
        pid = c.start(["sleep", "60"])
        r = c.exec(["sh", "-c", "cp /bin/busybox /tmp/dropped && ln -s /tmp/dropped /tmp/sleep"])
        assert r.returncode == 0, r.stderr
        assert (c.upperdir / "tmp" / "dropped").exists()
        c.exec(["sh", "-c", "/tmp/sleep 60 >/dev/null 2>&1 &"])
        deadline = time.monotonic() + 5
        dropped = None
        while dropped is None and time.monotonic() < deadline:
            snap = take_snapshot(with_fds=False)
            rows = snap.processes.filter(pc.equal(snap.processes["container_id"], c.id)).to_pylist()
            dropped = next((p for p in rows if p["exepath"] == "/tmp/dropped"), None)
            time.sleep(0.1)
        assert dropped is not None
        init = next(p for p in rows if p["pid"] == pid)
        assert init["exepath"] == "/bin/busybox" and init["exe_upper_layer"] is False
        assert dropped["exe_upper_layer"] is True
    assert c.workdir is None
