"""The hunting views: contract columns, semantics on scripted rows, several captures."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import hunt_support
import pytest
from fcap.analyze.hunt import contract
from fcap.capture.synth import BASE_TS, make_capture

import fcap

MS = 1_000_000
C9 = "c0ffee000000" + "9" * 52


@pytest.fixture(scope="module")
def cap(tmp_path_factory):  # type: ignore[no-untyped-def]
    path = hunt_support.sample_capture(tmp_path_factory.mktemp("views"))
    with fcap.open(path) as c:
        yield c


def _ev(ms: float, pid: int, syscall: str, **kw):  # type: ignore[no-untyped-def]
    return {"ts": BASE_TS + int(ms * MS), "pid": pid, "syscall": syscall, **kw}


@pytest.mark.parametrize("view", [v for v in contract.VIEWS if v.columns and v.name != "alerts"],
                         ids=lambda v: v.name)
def test_view_matches_contract(cap, view: contract.View) -> None:  # type: ignore[no-untyped-def]
    cap.view(view.name)  # events: built on first use
    described = cap.con.execute(f"DESCRIBE {view.name}").fetchall()
    got = [(r[0], r[1]) for r in described]
    want = [(c.name, c.type) for c in view.columns]
    got_types = dict(got)
    if view.name == "events":  # every Falco field is a column; types are the catalog's
        assert set(dict(want)) <= set(got_types)
    elif view.name == "shell_commands":  # the sessions module adds columns
        assert {c: got_types.get(c) for c, _ in want} == dict(want)
    else:
        assert got == want


def test_event_views_stay_lazy(cap) -> None:  # type: ignore[no-untyped-def]
    """Only the small side tables and the process images are tables; events are not."""
    tables = {r[0] for r in cap.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "raw_events" not in tables and "events" not in tables
    assert not any(t in tables for t in ("file_events", "socket_events", "process_events"))
    plan = cap.con.execute("EXPLAIN SELECT count(*) FROM file_events").fetchall()
    assert "READ_PARQUET" in str(plan).upper() or "PARQUET_SCAN" in str(plan).upper()


def test_process_images_and_chain(cap) -> None:  # type: ignore[no-untyped-def]
    rows = cap.sql("SELECT pid, source, name, exepath, cmdline, ppid, exit_code, end_ts - start_ts, "
                   "ancestor_pids, user_name, loginuid FROM processes WHERE pid = 5002 "
                   "ORDER BY start_ts").fetchall()
    fork, exe = rows
    # the forked child runs sudo's image until it execs cat
    assert fork[:5] == (5002, "fork", "sudo", "/usr/bin/sudo", "sudo cat /etc/shadow")
    assert fork[7] == 1 * MS  # fork at 1009 ms, exec at 1010 ms
    assert exe[:5] == (5002, "exec", "cat", "/usr/bin/cat", "cat /etc/shadow")
    assert exe[6] == 0 and exe[7] == 2 * MS  # exits 0 at 1012 ms
    assert exe[8] == [5001, 1210, 1200, 410, 1]
    assert exe[9:] == ("root", 1000)


def test_snapshot_process_without_exit_has_no_end(cap) -> None:  # type: ignore[no-untyped-def]
    row = cap.sql("SELECT source, end_ts, exit_code, ancestor_names FROM processes "
                  "WHERE pid = 1210").fetchall()
    assert row == [("snapshot", None, None, ["sshd", "sshd", "systemd"])]


def test_file_events_access_modes(cap) -> None:  # type: ignore[no-untyped-def]
    rows = cap.sql("SELECT path, access, is_read, is_write, is_create, flags, mode FROM file_events "
                   "WHERE op = 'open' AND proc_pid IN (5002, 5010, 6001) ORDER BY ts").fetchall()
    assert rows == [
        ("/etc/shadow", "r", True, False, False, 0o2000000, 0),
        ("/tmp/.x", "w", False, True, True, 0o1101, 0o644),
        ("/etc/passwd", "w", False, True, True, 0o2101, 0o666),
    ]


def test_socket_events_directions(cap) -> None:  # type: ignore[no-untyped-def]
    rows = cap.sql("SELECT evt_type, direction, family, l4proto FROM socket_events "
                   "WHERE proc_pid IN (2001, 5020) ORDER BY ts").fetchall()
    assert rows == [
        ("bind", "local", "ipv4", "tcp"),
        ("listen", "local", "ipv4", "tcp"),
        ("accept4", "in", "ipv4", "tcp"),
        ("connect", "out", "ipv4", "tcp"),
        ("sendto", "out", "ipv4", "udp"),
    ]


def test_user_names_prefer_the_containers_passwd(cap) -> None:  # type: ignore[no-untyped-def]
    assert cap.sql("SELECT DISTINCT user_name FROM socket_events WHERE proc_pid = 2001").fetchall() == [
        ("nginx",)
    ]
    assert cap.sql("SELECT user_name FROM users WHERE uid = 101 AND container_id = 'host'"
                   ).fetchall() == [("systemd-resolve",)]


def test_containers_view(cap) -> None:  # type: ignore[no-untyped-def]
    rows = cap.sql("SELECT container_id, container_image_repository, container_image_tag, "
                   "container_privileged, k8s_pod_name, k8s_ns_name FROM containers ORDER BY 1"
                   ).fetchall()
    assert rows == [
        ("a1b2c3d4e5f6", "docker.io/library/nginx", "1.25", False, "web-7d9f", "shop"),
        ("f00dfeedbeef", "registry.example.com/shop/api", "2.1", True, "api-5c8", "shop"),
    ]


def test_edge_cases(tmp_path) -> None:
    """Image references, rmdir through unlinkat, openat2/creat flags, threads, exit codes."""
    events = [
        _ev(1, 10, "openat2", flags_aux=0o102, path="/var/a", res=3, fd=3),
        _ev(2, 10, "creat", a1=0o600, path="/var/b", res=4, fd=4),
        _ev(3, 10, "unlinkat", a0=-100, a2=0x200, path="/var/d"),
        _ev(4, 10, "mkdirat", a0=-100, a2=0o755, path="/var/e"),
        _ev(5, 11, "clone", tid=12, ppid=10, res=0, comm="worker"),  # a new thread, not a process
        _ev(6, 11, "procexit", tid=12, res=0),  # the thread's exit
        _ev(7, 11, "procexit", res=3),  # the process's exit
        _ev(8, 10, "connect", fd=5, sock_family=1, unix_path="/run/x.sock", res=-111),
    ]
    procs = [{"pid": 10, "ppid": 1, "comm": "tool", "exepath": "/usr/bin/tool", "argv": ["tool"],
              "start_ts": BASE_TS - MS},
             {"pid": 11, "ppid": 10, "comm": "worker", "exepath": "/usr/bin/worker",
              "argv": ["worker", "-x"], "start_ts": BASE_TS - MS, "container_id": C9}]
    conts = [{"id": C9, "image": "localhost:5000/team/app@sha256:abcd"},
             {"id": "d" * 64, "image": "busybox"},
             {"id": "e" * 64, "image": "ghcr.io/o/r:v1@sha256:ef"}]
    path = make_capture(tmp_path / "edge.parquet", events, processes=procs, containers=conts)
    with fcap.open(path) as cap:
        files = cap.sql("SELECT evt_type, op, access, is_create, mode FROM file_events ORDER BY ts"
                        ).fetchall()
        assert files == [
            ("openat2", "open", "rw", True, None),
            ("creat", "open", "w", True, 0o600),
            ("unlinkat", "rmdir", None, False, None),
            ("mkdirat", "mkdir", None, False, 0o755),
        ]
        procs_rows = cap.sql("SELECT pid, source, end_ts - start_ts, exit_code, cmdline, container_id "
                             "FROM processes ORDER BY pid").fetchall()
        assert procs_rows == [
            (10, "snapshot", None, None, "tool", "host"),
            (11, "snapshot", 7 * MS + MS, 3, "worker -x", "c0ffee000000"),
        ]
        images = cap.sql("SELECT container_image_repository, container_image_tag FROM containers "
                         "ORDER BY container_full_id").fetchall()
        assert images == [("localhost:5000/team/app", None), ("busybox", None), ("ghcr.io/o/r", "v1")]
        sock = cap.sql("SELECT family, unix_path, failed FROM socket_events").fetchall()
        assert sock == [("unix", "/run/x.sock", True)]


def test_several_captures_with_host_column(tmp_path) -> None:
    """A list, a glob and a hive tree read as one, with `host` telling them apart."""
    (tmp_path / "a").mkdir()
    a = hunt_support.sample_capture(tmp_path / "a")
    hive = tmp_path / "hive" / "host=node-2" / "date=2026-11-18"
    hive.mkdir(parents=True)
    from fcap.analyze.hunt import sample

    sample.build(hive / "seg-000.parquet", hostname="ignored-by-hive")
    with fcap.open([a, tmp_path / "hive"]) as cap:
        assert sorted(cap.hosts) == ["node-1", "node-2"]
        per_host = cap.sql("SELECT host, count(*) FROM file_events GROUP BY host ORDER BY host").fetchall()
        one = per_host[0][1]
        assert per_host == [("node-1", one), ("node-2", one)]
        # pids repeat across hosts; images never mix them
        chains = cap.sql("SELECT host, ancestor_pids FROM processes WHERE pid = 5002 "
                         "AND source = 'exec' ORDER BY host").fetchall()
        assert chains == [("node-1", [5001, 1210, 1200, 410, 1]), ("node-2", [5001, 1210, 1200, 410, 1])]
        assert len(cap.sql("SELECT DISTINCT image_id FROM processes")) == len(cap.processes)
    glob = str(tmp_path / "hive" / "host=*" / "*" / "*.parquet")
    with fcap.open(glob) as cap:
        assert cap.hosts == ["node-2"]


def test_shell_commands_view(cap) -> None:  # type: ignore[no-untyped-def]
    rows = cap.sql("SELECT shell_pid, user_name, tty, line FROM shell_commands "
                   "WHERE container_id = 'host' ORDER BY ts LIMIT 2").fetchall()
    assert rows == [(1210, "alice", 34816, "cat /etc/shadow"),
                    (1210, "alice", 34816, "sudo cat /etc/shadow")]
    rows = cap.sql("SELECT DISTINCT container_id, shell_pid FROM shell_commands "
                   "WHERE container_id <> 'host'").fetchall()
    assert rows == [("a1b2c3d4e5f6", 6001)]


def test_views_work_on_an_empty_capture(tmp_path) -> None:
    path = make_capture(tmp_path / "empty.parquet", [])
    with fcap.open(path) as cap:
        for v in ("processes", "process_events", "file_events", "socket_events", "containers"):
            assert len(cap.view(v)) == 0


def test_read_only_copy_without_root(tmp_path) -> None:
    """Views need no write access to the capture's directory."""
    src = hunt_support.sample_capture(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(src, ro / "c.parquet")
    (ro / "c.parquet").chmod(0o444)
    ro.chmod(0o555)
    try:
        with fcap.open(ro / "c.parquet") as cap:
            assert len(cap.file_events) > 0
    finally:
        ro.chmod(0o755)


def test_contract_markdown_lists_every_column() -> None:
    text = contract.render_markdown()
    for v in contract.VIEWS:
        assert f"### `{v.name}`" in text
        for c in v.columns:
            assert f"| `{c.name}` | {c.type} |" in text
    assert contract.VIEWS_VERSION in text


def test_duckdb_relation_types_are_plain(cap) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(cap.processes.relation, duckdb.DuckDBPyRelation)
    assert Path(cap.paths[0]).exists()


def test_basic_shell_commands_without_the_sessions_module(tmp_path) -> None:
    """Without fcap.analyze.sessions the view still has exactly the contract's columns."""
    from fcap.analyze.hunt.views import create_views
    from fcap.capture.reader import open_capture

    path = hunt_support.sample_capture(tmp_path)
    con = duckdb.connect()
    open_capture(path).attach(con)
    create_views(con, shell_module=False)
    got = [(r[0], r[1]) for r in con.execute("DESCRIBE shell_commands").fetchall()]
    assert got == [(c.name, c.type) for c in contract.SHELL_COMMANDS.columns]
    rows = con.execute("SELECT shell_pid, container_id, line FROM shell_commands "
                       "WHERE NOT withheld ORDER BY ts").fetchall()
    assert len(rows) == 13
    assert rows[5] == (6001, "a1b2c3d4e5f6", "cat /etc/passwd")


def test_directory_of_segments_reads_as_one(tmp_path) -> None:
    """A rotated recording: segments of one host in a directory, read as one capture."""
    seg = tmp_path / "rotated"
    seg.mkdir()
    procs = [{"pid": 10, "ppid": 1, "comm": "tool", "exepath": "/usr/bin/tool", "argv": ["tool"],
              "start_ts": BASE_TS - MS}]
    make_capture(seg / "seg-000.parquet", [_ev(1, 10, "openat", path="/a", a2=0, res=3, fd=3)],
                 processes=procs, meta={"hostname": "n1", "segment": 0})
    make_capture(seg / "seg-001.parquet",
                 [_ev(2000, 10, "openat", path="/b", a2=1, res=4, fd=4),
                  _ev(2001, 10, "connect", fd=4, sock_family=2, l4proto=6, raddr="10.0.0.1",
                      rport=443)],
                 processes=procs, meta={"hostname": "n1", "segment": 1})
    with fcap.open(seg) as cap:
        assert cap.hosts == ["n1"]
        assert cap.sql("SELECT path, access, image_id FROM file_events ORDER BY ts").fetchall() == [
            ("/a", "r", 1), ("/b", "w", 1)]  # one process image across both segments
        assert len(cap.processes) == 1  # the snapshot repeated in each segment counts once
        assert cap.sql("SELECT raddr FROM socket_events").fetchall() == [("10.0.0.1",)]


def test_event_image_is_the_one_running_at_the_event(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Per-event views attribute each event to the image running at its time (many images)."""
    procs = [{"pid": 70, "ppid": 1, "comm": "sh", "exepath": "/bin/sh", "argv": ["sh"],
              "start_ts": BASE_TS - 10 * MS}]
    evs = [_ev(1, 70, "openat", path="/a", a2=0, res=3, fd=3, comm="sh")]
    for i, name in enumerate(["one", "two", "three"]):
        t = 10 + 10 * i
        evs.append(_ev(t, 70, "execve", exe=f"/bin/{name}", argv=[name, "-x"], comm=name))
        evs.append(_ev(t + 1, 70, "openat", path=f"/{name}", a2=1, res=3, fd=3, comm=name))
        evs.append(_ev(t + 2, 70, "connect", fd=3, sock_family=2, raddr="10.0.0.1", rport=80,
                       comm=name))
    evs.append(_ev(0.5, 71, "openat", path="/nobody", a2=0, res=3, fd=3))  # no image at all
    p = make_capture(tmp_path / "i.parquet", evs, processes=procs)
    with fcap.open(p) as c:
        got = c.sql("SELECT path, proc_exepath, proc_cmdline, image_id IS NOT NULL FROM file_events "
                    "ORDER BY ts").fetchall()
        assert got == [("/nobody", None, "synth", False), ("/a", "/bin/sh", "sh", True),
                       ("/one", "/bin/one", "one -x", True), ("/two", "/bin/two", "two -x", True),
                       ("/three", "/bin/three", "three -x", True)]
        sock = c.sql("SELECT proc_exepath FROM socket_events ORDER BY ts").fetchall()
        assert [r[0] for r in sock] == ["/bin/one", "/bin/two", "/bin/three"]
        joined = c.sql("SELECT count(*) FROM file_events f JOIN processes p USING (image_id) "
                       "WHERE p.exepath = f.proc_exepath AND p.pid = f.proc_pid").fetchall()
        assert joined == [(4,)]
