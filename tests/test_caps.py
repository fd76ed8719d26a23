"""Capability sets: ``events.cap_*`` (schema 2) and ``thread.cap_permitted/inheritable/effective``.

libsinsp renders a mask as the ``CAP_*`` names of its set bits (0..40), in bit
order, separated by one space; the empty set is ``''``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from fcap.analyze.fields.caps import CAP_FULL, CAP_NAMES, caps_sql
from fields_fixture import Raw, build, fields

from fcap.schema import EVENTS, SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
CAP_H = Path("/usr/include/linux/capability.h")
SYS_ADMIN = 1 << 21
CID = "4be1c0de" * 8
ALL_TEXT = " ".join(CAP_NAMES)


def sql_text(mask: int | None) -> str | None:
    """The field SQL evaluated by DuckDB on one mask (UBIGINT, or NULL)."""
    lit = "NULL" if mask is None else str(mask)
    con = duckdb.connect()
    return con.execute(f"SELECT {caps_sql('m')} FROM (SELECT CAST({lit} AS UBIGINT) AS m)").fetchone()[0]


# --- the mask -> text expression ---------------------------------------------------------


@pytest.mark.parametrize(("mask", "text"), [
    (0, ""),
    (SYS_ADMIN, "CAP_SYS_ADMIN"),
    (1, "CAP_CHOWN"),
    (1 << 40, "CAP_CHECKPOINT_RESTORE"),
    ((1 << 1) | SYS_ADMIN, "CAP_DAC_OVERRIDE CAP_SYS_ADMIN"),
    ((1 << 16) | (1 << 39) | (1 << 38), "CAP_SYS_MODULE CAP_PERFMON CAP_BPF"),
    (1 << 45, ""),  # bits libsinsp does not know are ignored
    ((1 << 63) | 1, "CAP_CHOWN"),
    (None, None),  # not recorded stays NULL
])  # fmt: skip
def test_known_masks(mask: int | None, text: str | None) -> None:
    assert sql_text(mask) == text


def test_full_set_and_root_without_one_capability() -> None:
    assert CAP_FULL == 0x1FFFFFFFFFF
    full = sql_text(0x1FFFFFFFFFF)
    assert full.split(" ")[:3] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"]
    assert full.split(" ")[-1] == "CAP_CHECKPOINT_RESTORE" and len(full.split(" ")) == 41
    # a root shell in a sandbox without CAP_SYS_RESOURCE (bit 24): the general path
    names = sql_text(0x1FFFEFFFFFF).split(" ")
    assert len(names) == 40 and "CAP_SYS_RESOURCE" not in names and "CAP_SYS_TIME" in names
    assert names == [n for n in full.split(" ") if n != "CAP_SYS_RESOURCE"]


def test_names_and_bits_match_the_kernel_header() -> None:
    """The name list is the kernel's CAP_* numbering (checked against linux/capability.h)."""
    if not CAP_H.exists():
        pytest.skip(f"{CAP_H} is not installed")
    found = dict(re.findall(r"^#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$", CAP_H.read_text(), re.M))
    bits = {name: int(v) for name, v in found.items()}
    assert bits["CAP_SYS_ADMIN"] == 21
    for i, name in enumerate(CAP_NAMES):
        assert bits[name] == i, name
        assert sql_text(1 << i) == name
    # a random-looking mask: names in bit order
    mask = sum(1 << b for b in (0, 5, 12, 21, 33, 40))
    want = [n for n, b in sorted(bits.items(), key=lambda kv: kv[1])
            if b in (0, 5, 12, 21, 33, 40)]  # fmt: skip
    assert sql_text(mask) == " ".join(want)


# --- fields over the events view -----------------------------------------------------------


def test_fields_from_the_raw_columns_and_null_when_not_recorded() -> None:
    r = Raw()
    r.ev("openat", 10, path="/a", fd=3, res=3, a2=0, cap_permitted=CAP_FULL, cap_inheritable=0,
         cap_effective=CAP_FULL & ~SYS_ADMIN)
    r.ev("openat", 11, path="/b", fd=3, res=3, a2=0, uid=1000, euid=1000, cap_permitted=0,
         cap_inheritable=SYS_ADMIN, cap_effective=0)
    r.ev("shell_line", 12, text="id")  # no capability columns
    con = build(r)
    got = fields(con, ["thread.cap_permitted", "thread.cap_inheritable", "thread.cap_effective"])
    assert got[0][0] == ALL_TEXT and got[0][1] == ""
    assert "CAP_SYS_ADMIN" not in got[0][2].split(" ") and len(got[0][2].split(" ")) == 40
    assert got[1] == ("", "CAP_SYS_ADMIN", "")
    assert got[2] == (None, None, None)


def test_event_arguments_of_execve_and_capset() -> None:
    # libsinsp: PT_UINT64 with PF_HEX, printed with %PRIX64 (upper case, no 0x)
    r = Raw()
    r.ev("execve", 20, res=0, cap_permitted=CAP_FULL, cap_inheritable=0, cap_effective=CAP_FULL)
    r.ev("capset", 20, res=0, cap_permitted=CAP_FULL, cap_inheritable=0,
         cap_effective=CAP_FULL & ~SYS_ADMIN)
    r.ev("openat", 20, path="/a", fd=3, res=3, a2=0, cap_effective=CAP_FULL)
    con = build(r)
    got = fields(con, ["evt.arg.cap_inheritable", "evt.arg.cap_permitted",
                       "evt.arg.cap_effective", "evt.rawarg.cap_effective"])
    assert got == [
        ("0", "1FFFFFFFFFF", "1FFFFFFFFFF", CAP_FULL),
        ("0", "1FFFFFFFFFF", "1FFFFDFFFFF", CAP_FULL & ~SYS_ADMIN),
        (None, None, None, None),  # openat has no such parameter
    ]
    args = fields(con, ["evt.args"], "e.evt_type = 'capset'")[0][0]
    assert "cap_permitted=1FFFFFFFFFF cap_effective=1FFFFDFFFFF" in args


def test_schema_version_and_columns() -> None:
    assert SCHEMA_VERSION >= 2
    for name in ("cap_permitted", "cap_inheritable", "cap_effective"):
        f = EVENTS.field(name)
        assert str(f.type) == "uint64" and f.nullable


def test_synthetic_capture_holds_plausible_sets(tmp_path: Path) -> None:
    from fcap.capture.reader import open_capture
    from fcap.capture.synth import generate

    path = tmp_path / "g.parquet"
    generate(path, 20_000, seed=3)
    con = duckdb.connect()
    open_capture(path).attach(con)
    rows = con.execute("SELECT euid = 0, cap_permitted, cap_inheritable, cap_effective, count(*) "
                   "FROM raw_events GROUP BY ALL ORDER BY 1").fetchall()
    assert {r[:4] for r in rows} == {(False, 0, 0, 0), (True, CAP_FULL, 0, CAP_FULL)}


# --- older captures --------------------------------------------------------------------


def _bundled_sample() -> Path:
    caps = sorted((REPO / "samples").glob("*/capture.parquet"))
    if not caps:
        pytest.skip("no bundled sample capture")
    return caps[0]


def test_schema_1_sample_reads_with_null_capabilities() -> None:
    import pyarrow.parquet as pq
    from fcap.capture.reader import open_capture

    from fcap.api import open as fcap_open

    sample = _bundled_sample()
    kv = pq.read_metadata(sample).metadata
    assert kv[b"fcap.schema_version"] == b"1"  # the bundled samples predate the columns
    assert "cap_effective" not in pq.read_schema(sample).names
    cap = open_capture(sample)
    con = duckdb.connect()
    cap.attach(con)
    n, nulls = con.execute("SELECT count(*), count(*) FILTER (WHERE cap_permitted IS NULL AND "
                       "cap_inheritable IS NULL AND cap_effective IS NULL) FROM raw_events").fetchone()
    assert n > 0 and nulls == n
    api = fcap_open(sample)
    try:
        got = api.sql("SELECT count(*), count(thread_cap_effective), count(cap_permitted) "
                      "FROM events").fetchall()
        assert got == [(n, 0, 0)]
    finally:
        api.close()


def _rules(tmp_path: Path, condition: str, output: str = "caps=%thread.cap_effective "
           "perm=%thread.cap_permitted proc=%proc.name") -> Path:
    p = tmp_path / "caps_rules.yaml"
    p.write_text(
        "- rule: Admin capable open\n"
        "  desc: test\n"
        f"  condition: {condition}\n"
        f"  output: {output}\n"
        "  priority: WARNING\n"
    )
    return p


def test_replay_of_a_schema_1_sample_still_works(tmp_path: Path) -> None:
    from fcap.analyze.regress.engine_bridge import replay_json

    sample = _bundled_sample()
    rules = _rules(tmp_path, "evt.type in (openat, execve) and thread.cap_effective contains CAP_SYS_ADMIN")
    assert replay_json([sample], [rules]) == []  # no value: the comparison is false
    rules = _rules(tmp_path, "evt.type = execve and not thread.cap_effective contains CAP_SYS_ADMIN")
    alerts = replay_json([sample], [rules])
    assert alerts, "a negated check on a missing field is true, as for any other field"
    # no value: <NA> in the text and null in output_fields, as for other missing fields
    assert alerts[0]["output_fields"]["thread.cap_effective"] is None
    assert " caps=<NA> " in alerts[0]["output"]


# --- rules over a synthetic capture ------------------------------------------------------


def _world(tmp_path: Path) -> Path:
    from fcap.capture.synth import make_capture

    cg = 4242
    events = [
        # root in a container with every capability: the release_agent escape
        {"syscall": "openat", "pid": 301, "ppid": 300, "comm": "sh", "cgroup_id": cg,
         "container_id": CID, "path": "/tmp/cgrp/release_agent", "fd": 3, "res": 3,
         "a2": 0o1001},
        # the same write without CAP_SYS_ADMIN (a default docker container)
        {"syscall": "openat", "pid": 302, "ppid": 300, "comm": "sh", "cgroup_id": cg,
         "container_id": CID, "path": "/tmp/cgrp/release_agent", "fd": 3, "res": 3,
         "a2": 0o1001, "cap_permitted": 0xA80425FB, "cap_effective": 0xA80425FB},
        # a non-root user (no capabilities) on the host
        {"syscall": "openat", "pid": 303, "ppid": 1, "comm": "cat", "uid": 1000,
         "euid": 1000, "path": "/etc/hosts", "fd": 3, "res": 3, "a2": 0},
        # root on the host
        {"syscall": "openat", "pid": 304, "ppid": 1, "comm": "cat", "path": "/etc/hosts",
         "fd": 3, "res": 3, "a2": 0},
    ]  # fmt: skip
    return make_capture(
        tmp_path / "caps.parquet", events,
        containers=[{"id": CID, "name": "web", "image": "docker.io/library/busybox:1.36",
                     "runtime": "runc", "type": "containerd", "privileged": True}],
        cgroups=[{"id": cg, "path": "/kubepods/" + CID, "container_id": CID}],
    )  # fmt: skip


def test_rule_with_cap_effective_on_a_synthetic_capture(tmp_path: Path) -> None:
    from fcap.analyze.regress.engine_bridge import replay_json

    cap = _world(tmp_path)
    rules = _rules(tmp_path, "evt.type = openat and thread.cap_effective contains CAP_SYS_ADMIN")
    alerts = replay_json([cap], [rules], "all")
    assert sorted(a["output_fields"]["proc.name"] for a in alerts) == ["cat", "sh"]
    for a in alerts:
        assert a["output_fields"]["thread.cap_effective"] == ALL_TEXT
        assert f"caps={ALL_TEXT} perm={ALL_TEXT} proc=" in a["output"]
    # icontains on a lower-case name, as the stable ruleset writes it
    rules = _rules(tmp_path, "evt.type = openat and thread.cap_effective icontains sys_module "
                   "and user.uid != 0")
    assert replay_json([cap], [rules]) == []


@pytest.mark.shared
def test_stable_release_agent_rule_fires_only_with_cap_sys_admin(tmp_path: Path,
                                                                 shared_dir: Path) -> None:
    from fcap.analyze.regress.engine_bridge import replay_json

    cap = _world(tmp_path)
    stable = shared_dir / "anchors" / "falco-rules" / "falco_rules.yaml"
    alerts = [a for a in replay_json([cap], [stable], "all")
              if a["rule"] == "Detect release_agent File Container Escapes"]
    assert len(alerts) == 1
    out = alerts[0]["output_fields"]
    assert out["fd.name"] == "/tmp/cgrp/release_agent" and out["thread.cap_effective"] == ALL_TEXT


# --- live recording ----------------------------------------------------------------------

_CAPSET_CHILD = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)   # _LINUX_CAPABILITY_VERSION_3, this thread
data = (ctypes.c_uint32 * 6)()                # {effective, permitted, inheritable} x 2
assert libc.syscall(125, hdr, data) == 0      # capget
os.close(os.open(sys.argv[1] + "-before", os.O_RDONLY | os.O_CREAT, 0o600))
data[0] &= ~(1 << 21)                         # drop CAP_SYS_ADMIN from the effective set
assert libc.syscall(126, hdr, data) == 0      # capset (not a recorded syscall)
os.close(os.open(sys.argv[1] + "-after", os.O_RDONLY | os.O_CREAT, 0o600))
"""


@pytest.mark.live
def test_live_capability_sets(tmp_path: Path) -> None:
    """Root shows CAP_SYS_ADMIN; an unprivileged uid, a dropped bounding set and an
    unrecorded capset show the reduced sets from their next event on."""
    from live_support import record_while

    from fcap.api import open as fcap_open

    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = str(tmp_path / f"caps{time.time_ns()}")
    setpriv = shutil.which("setpriv")
    capsh = shutil.which("capsh")

    def work() -> None:
        subprocess.run(["/bin/cat", tag + "-root"], capture_output=True)
        if setpriv:
            subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                            "/bin/cat", tag + "-nobody"], capture_output=True)
        if capsh:
            subprocess.run([capsh, "--drop=cap_sys_admin", "--", "-c",
                            f"/bin/cat {tag}-capsh"], capture_output=True)
        subprocess.run([sys.executable, "-c", _CAPSET_CHILD, tag], check=True)

    out = tmp_path / "live.parquet"
    record_while(out, work, syscalls="default")
    api = fcap_open(out)
    try:
        rows = api.sql(
            "SELECT substr(fd_name, length(?) + 2) AS which, proc_name, user_uid, "
            "thread_cap_permitted, thread_cap_inheritable, thread_cap_effective, "
            "cap_effective FROM events WHERE evt_type IN ('open', 'openat') "
            "AND starts_with(fd_name, ?)", [tag, tag]).fetchall()
    finally:
        api.close()
    got = {r[0]: r[1:] for r in rows}
    own = Path(f"/proc/{os.getpid()}/status").read_text()
    own_eff = int(re.search(r"^CapEff:\s*([0-9a-f]+)", own, re.M).group(1), 16)
    assert own_eff & SYS_ADMIN, "the test runs as root with CAP_SYS_ADMIN"

    name, uid, perm, _inh, eff, raw = got["root"]
    assert name == "cat" and uid == 0
    assert "CAP_SYS_ADMIN" in eff.split(" ") and "CAP_SYS_ADMIN" in perm.split(" ")
    assert raw == own_eff  # root's exec keeps the bounding set: the same sets as this process
    if setpriv:
        name, uid, perm, _inh, eff, raw = got["nobody"]
        assert (name, uid, perm, eff, raw) == ("cat", 65534, "", "", 0)
    if capsh:
        name, uid, _perm, _inh, eff, raw = got["capsh"]
        assert uid == 0 and "CAP_SYS_ADMIN" not in eff.split(" ")
        assert "CAP_CHOWN" in eff.split(" ") and raw == own_eff & ~SYS_ADMIN
    # capset is not recorded: its exit still invalidates the cached context
    before, after = got["before"], got["after"]
    assert "CAP_SYS_ADMIN" in before[4].split(" ")
    assert "CAP_SYS_ADMIN" not in after[4].split(" ") and after[5] == before[5] & ~SYS_ADMIN
    assert after[2] == before[2]  # the permitted set is unchanged
