"""enrich.build_view: a view with only some field columns and only the joins they need."""

from __future__ import annotations

import pytest
from fcap.analyze import enrich
from fields_fixture import Raw, build


def _con():
    r = Raw()
    r.add("processes", pid=100, ppid=1, comm="bash", exe="bash", exepath="/usr/bin/bash",
          argv=["bash"], start_ts=20)
    r.add("fds", pid=100, fd=1, type="file", name="/dev/pts/1", flags=2)
    r.add("users", uid=1000, name="alice", gid=1000, home="/home/alice", shell="/bin/bash")
    r.ev("write", 100, res=1, ppid=1, a0=1, fd=1, uid=1000, euid=1000)
    r.ev("openat", 100, res=3, ppid=1, a2=0, path="/etc/hosts", fd=3)
    return build(r)


def test_subset_view_matches_the_full_view_and_skips_unneeded_joins() -> None:
    con = _con()
    enrich.build_view(con, "ev_small", ["proc_name", "user_name"])
    q = "SELECT evt_num, proc_name, user_name FROM {} ORDER BY evt_num"
    assert con.execute(q.format("ev_small")).fetchall() == con.execute(q.format("events")).fetchall()
    assert con.execute(q.format("ev_small")).fetchall() == [(1, "bash", "alice"), (2, "bash", "root")]
    plan = con.execute("EXPLAIN SELECT count(*) FROM ev_small").fetchall()[0][1]
    full = con.execute("EXPLAIN SELECT count(*) FROM events").fetchall()[0][1]
    assert "fc_fdrec" not in plan and "fc_cont" not in plan
    assert "fc_fdrec" in full
    enrich.build_view(con, "ev_fd", ["fd_name"])
    assert con.execute("SELECT fd_name FROM ev_fd ORDER BY evt_num").fetchall() == [
        ("/dev/pts/1",), ("/etc/hosts",)]


def test_unknown_field_column_is_an_error() -> None:
    con = _con()
    with pytest.raises(ValueError, match="proc_nope"):
        enrich.build_view(con, "ev_bad", ["proc_name", "proc_nope"])
