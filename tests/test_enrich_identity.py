"""user.*, group.*, container.*, k8s.*, evt.* and shell.* in the enriched events view."""

from __future__ import annotations

from fields_fixture import Raw, build, fields

CID = "3ad7b26ded6d8e7b23da7d48fe889434573036c27ae5a74837233de441c3601e"
SANDBOX = "9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100"


def _world() -> Raw:
    r = Raw()
    r.add("processes", pid=1, ppid=0, comm="systemd", exe="/sbin/init", argv=["/sbin/init"])
    r.add("users", uid=0, name="root", gid=0, home="/root", shell="/bin/bash")
    r.add("users", uid=1000, name="alice", gid=1000, home="/home/alice", shell="/bin/zsh")
    r.add("users", uid=33, name="www-data", gid=33, home="/var/www", shell="/usr/sbin/nologin")
    r.add("users", uid=1000, name="app", gid=1000, home="/app", shell="/bin/sh", container_id=CID)
    r.add("groups", gid=1000, name="alice")
    r.add("groups", gid=0, name="root")
    return r


def test_user_fields_follow_setuid() -> None:
    r = _world()
    r.ev("setuid", 50, res=0, ppid=1, a0=33, uid=0, euid=0, loginuid=1000)
    r.ev("openat", 50, res=3, ppid=1, a2=0, path="/x", fd=3, uid=33, euid=33, loginuid=1000)
    r.ev("openat", 50, res=3, ppid=1, a2=0, path="/x", fd=3, uid=4242, euid=4242, egid=4242)
    con = build(r)
    got = fields(con, ["user.uid", "user.name", "user.homedir", "user.shell", "user.loginuid",
                       "user.loginname", "group.gid", "group.name"])
    assert got == [
        (0, "root", "/root", "/bin/bash", 1000, "alice", 0, "root"),
        (33, "www-data", "/var/www", "/usr/sbin/nologin", 1000, "alice", 0, "root"),
        (4242, "<NA>", "<NA>", "<NA>", -1, "<NA>", 4242, "<NA>"),
    ]
    # evt.arg.uid renders the user name, as libsinsp does for PT_UID
    assert fields(con, ["evt.arg.uid", "evt.rawarg.uid", "evt.arg[1]"],
                  "e.evt_type = 'setuid'") == [("www-data", 33, "www-data")]


def test_rows_without_euid_use_the_real_ids() -> None:
    # typed shell lines carry the real uid/gid only (the shell probe reads no cred)
    r = _world()
    r.ev("shell_line", 70, ppid=1, uid=1000, gid=1000, euid=None, egid=None, text="id")
    r.ev("shell_line", 71, ppid=1, uid=0, gid=0, euid=None, egid=None, text="id")
    con = build(r)
    assert fields(con, ["user.uid", "user.name", "group.gid", "group.name"]) == [
        (1000, "alice", 1000, "alice"),
        (0, "root", 0, "root"),
    ]


def test_container_and_k8s_from_cgroup_and_annotations() -> None:
    r = _world()
    r.add("cgroups", id=777, path="/kubepods/besteffort/pod1234/" + CID, container_id=CID)
    r.add("containers", id=CID, name="k8s_app_web-0_prod_1234_0",
          image="registry.example.com:5000/team/web:1.2.3", image_id="sha256:abc",
          runtime="runc", type="containerd", privileged=True, start_ts=5,
          annotations=[("io.kubernetes.cri.sandbox-name", "web-0"),
                       ("io.kubernetes.cri.sandbox-namespace", "prod"),
                       ("io.kubernetes.cri.sandbox-uid", "1234-uid"),
                       ("io.kubernetes.cri.sandbox-id", SANDBOX)],
          labels=[("app", "web")],
          mounts=[{"source": "/var/run/docker.sock", "dest": "/run/docker.sock", "mode": "",
                   "rw": True, "propagation": "rprivate"},
                  {"source": "/proc", "dest": "/host/proc", "mode": "ro", "rw": False,
                   "propagation": "rprivate"}])
    r.ev("openat", 60, res=3, ppid=1, a2=0, path="/x", fd=3, cgroup_id=777, euid=1000)
    r.ev("openat", 61, res=3, ppid=1, a2=0, path="/x", fd=3, cgroup_id=1, euid=1000)
    con = build(r)
    got = fields(con, ["container.id", "container.full_id", "container.name",
                       "container.image", "container.image.repository", "container.image.tag",
                       "container.privileged", "container.type", "k8s.pod.name", "k8s.ns.name",
                       "k8s.pod.uid", "k8s.pod.sandbox_id", "container.label[app]",
                       "container.mount.dest[/var/run/docker.sock]",
                       "container.mount.dest[/proc*]", "container.mount.source[0]",
                       "user.name", "container.start_ts"])
    assert got == [
        (CID[:12], CID, "k8s_app_web-0_prod_1234_0", "registry.example.com:5000/team/web:1.2.3",
         "registry.example.com:5000/team/web", "1.2.3", True, "containerd", "web-0", "prod",
         "1234-uid", SANDBOX[:12], "web", "/run/docker.sock", "/host/proc",
         "/var/run/docker.sock", "app", 5),
        # on the host: the plugin's 'host' pseudo-container
        ("host", "host", "host", "", "", "", False, "host", None, None, None, None, None, None,
         None, None, "alice", None),
    ]
    assert fields(con, ["container.mounts"], "e.pid = 60") == [
        ("/var/run/docker.sock:/run/docker.sock::true:rprivate,/proc:/host/proc:ro:false:rprivate",)
    ]


def test_evt_fields() -> None:
    r = _world()
    t = r.ev("openat", 70, res=-13, ppid=1, a0=-100, a2=0o1101, a3=0o644, path="/etc/passwd",
             cpu=1)
    r.ev("ptrace", 70, res=0, ppid=1, a0=16, a1=1234)
    r.ev("socket", 70, res=5, ppid=1, a0=17, a1=3, a2=768, fd=5)
    r.ev("chmod", 70, res=0, ppid=1, a0=0, a1=0o4755, path="/tmp/x")
    con = build(r)
    assert fields(con, ["evt.num", "evt.type", "evt.dir", "evt.res", "evt.rawres",
                        "evt.failed", "evt.cpu", "evt.rawtime", "evt.is_open_write",
                        "evt.is_open_create", "evt.arg.flags", "evt.arg.mode"],
                  "e.evt_type = 'openat'") == [
        (1, "openat", "<", "EACCES", -13, True, 1, t, True, True, "O_TRUNC|O_CREAT|O_WRONLY",
         "0644")
    ]
    assert fields(con, ["evt.arg.request", "evt.arg.pid"], "e.evt_type = 'ptrace'") == [
        ("PTRACE_ATTACH", "1234")
    ]
    assert fields(con, ["evt.arg.domain", "evt.arg[0]", "fd.num"],
                  "e.evt_type = 'socket'") == [("AF_PACKET", "5", 5)]
    assert fields(con, ["evt.arg.mode", "evt.arg.filename"], "e.evt_type = 'chmod'") == [
        ("S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID", "/tmp/x")
    ]
    times = fields(con, ["evt.time", "evt.datetime", "evt.time.iso8601"], "e.evt_num = 1")[0]
    assert times[1].startswith("2026-") and times[1].endswith(times[0])
    assert times[0].endswith("." + str(t % 10**9).rjust(9, "0"))


def test_shell_extension_fields() -> None:
    r = _world()
    r.ev("shell_line", 80, res=0, ppid=1, text="cat /etc/shadow", sid=80, tty=34817)
    r.ev("shell_line_withheld", 80, res=0, ppid=1, sid=80, tty=34817)
    r.ev("read", 80, res=1, ppid=1, fd=0, a0=0, sid=80, tty=34817)
    con = build(r)
    assert fields(con, ["evt.type", "shell.line", "shell.session", "shell.tty",
                        "shell.withheld"]) == [
        ("shell_line", "cat /etc/shadow", 80, 34817, False),
        ("shell_line_withheld", None, 80, 34817, True),
        ("read", None, None, None, None),
    ]


def test_open_predicates_follow_libsinsp() -> None:
    r = _world()
    r.ev("openat", 90, res=3, ppid=1, a2=0o102, a3=0o755, path="/tmp/run.sh", fd=3)
    r.ev("creat", 90, res=4, ppid=1, a1=0o644, path="/tmp/c", fd=4)
    r.ev("openat", 90, res=5, ppid=1, a2=0o200000, a3=0o777, path="/tmp", fd=5)
    con = build(r)
    assert fields(con, ["evt.arg.flags", "evt.is_open_read", "evt.is_open_write",
                        "evt.is_open_exec"]) == [
        ("O_CREAT|O_RDWR|O_WRONLY|O_RDONLY", True, True, True),
        # creat counts only for is_open_exec in libsinsp (here: no x bit)
        (None, False, False, False),
        ("O_DIRECTORY|O_RDONLY", True, False, False),
    ]
