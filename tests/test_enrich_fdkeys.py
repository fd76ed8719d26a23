"""Descriptor lookups whose (instance, fd) keys are too wide to pack: the dense-key path."""

from __future__ import annotations

import numpy as np
from fcap.analyze.state import fdstream, keys
from fcap.analyze.state.positions import Events
from fields_fixture import bash_world, build, fields

HUGE = 2**60


def test_huge_descriptor_numbers_give_the_same_answers() -> None:
    r = bash_world()
    r.ev("openat", 100, res=3, ppid=1, a0=-100, a2=0, path="/etc/passwd", fd=3)
    r.ev("close", 100, res=0, ppid=1, a0=HUGE, fd=HUGE)  # a record with a huge fd number
    r.ev("clone", 300, res=0, ppid=100, comm="bash")
    r.ev("read", 300, res=1, ppid=100, a0=3, fd=3)  # inherited: a lookup up the fork tree
    r.ev("read", 300, res=1, ppid=100, a0=0, fd=0)  # the parent's snapshot descriptor
    r.ev("read", 100, res=1, ppid=1, a0=3, fd=3)
    r.ev("read", 100, res=1, ppid=1, a0=9, fd=9)  # never open
    con = build(r)
    assert fields(con, ["proc.pid", "fd.num", "fd.name"], "e.evt_type IN ('read', 'close')") == [
        (100, HUGE, None),
        (300, 3, "/etc/passwd"),
        (300, 0, "/dev/pts/1"),
        (100, 3, "/etc/passwd"),
        (100, 9, None),
    ]


def test_dense_keys_are_used_when_keys_do_not_fit() -> None:
    n = 4
    ev = Events(
        ts=np.arange(n, dtype=np.int64) * 10, fd=np.array([3, HUGE, 3, 5], np.int64),
        pkey=np.array([1, 1, 1, 1], np.int64), g=np.arange(n, dtype=np.int64),
        ts_sorted=np.arange(n, dtype=np.int64) * 10, tid=np.ones(n, np.int32),
        rec={"rk": np.array([1, 2, 0, 0], np.int16),
             "rfd": np.array([3, HUGE, keys.NONE, keys.NONE], np.int64),
             "sfd": np.full(n, keys.NONE, np.int64)})
    snap = fdstream.Snapshot(*(np.zeros(0, t) for t in (np.int64, np.int64, np.int64, np.int8,
                                                        bool, bool)))
    rec = fdstream.Records(ev, snap)
    st = fdstream.Stream(ev, rec)
    assert st.uk is not None
    # the read of fd 3 finds the open (record 0); fd 5 has no record
    assert st.ev_own.tolist() == [0, -1, 0, -1]
    found = st.lookup(np.array([1, 1, 1]), np.array([3, 3, 5]), np.array([0, 5, 30]),
                      ev.ts_sorted)
    assert found.tolist() == [0, 0, -1]
