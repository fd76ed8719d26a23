"""The numpy ASOF lookup of fcap.analyze.state.proc_segments against a brute-force search."""

from __future__ import annotations

import numpy as np
from fcap.analyze.state.proc_segments import asof


def _brute(rk: np.ndarray, rt: np.ndarray, qk: np.ndarray, qt: np.ndarray,
           qvalid: np.ndarray) -> list[int]:
    """The last right row (in order) with the query's key and the greatest time <= the query's."""
    out = []
    for k, t, ok in zip(qk, qt, qvalid, strict=True):
        best = -1
        if ok:
            for i, (a, b) in enumerate(zip(rk, rt, strict=True)):
                if a == k and b <= t and (best < 0 or b >= rt[best]):
                    best = i
        out.append(best)
    return out


def test_asof_matches_brute_force_with_ties_gaps_and_invalid_queries() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, m = int(rng.integers(0, 25)), int(rng.integers(0, 25))
        rk = rng.integers(0, 6, n)
        rt = rng.integers(-3, 8, n) * 10  # few distinct times: many ties
        order = np.lexsort((rt, rk))
        rk, rt = rk[order], rt[order]
        qk = rng.integers(-1, 8, m)  # some keys absent from the right side
        qt = rng.integers(-5, 10, m) * 10 + rng.integers(0, 2, m) * 5
        qvalid = rng.random(m) < 0.8
        got = asof(rk, rt, qk, qt, qvalid)
        assert got.tolist() == _brute(rk, rt, qk, qt, qvalid)


def test_asof_extreme_times() -> None:
    # snapshot instances start at -(2**62): times are ranked, never packed as they are
    rk = np.array([5, 5, 9])
    rt = np.array([-(2**62), 2**61, -(2**62)])
    got = asof(rk, rt, np.array([5, 5, 9, 4]), np.array([0, 2**62, -(2**62) - 1, 0]))
    assert got.tolist() == [0, 1, -1, -1]
