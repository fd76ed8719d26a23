"""The replay's pre-filter: the events some rule may match, found before any costly join.

The exact conditions read process, user, container and descriptor state, whose
joins cost far more per event than the checks themselves. Most events fail a
check on the row alone (the file an open names, its flags, the syscall), so
the replay (:mod:`fcap.analyze.engine`) narrows the events down first, with
each rule's ``raw`` relaxation (:mod:`fcap.analyze.compile.relax`: implied by
the condition, so no match is lost):

1. one scan of the capture, with no join: the scan positions of the rows that
   pass some rule's relaxation (:func:`fcap.analyze.enrich.candidates`);
2. the exact conditions, over those rows only (the view is restricted to them
   before any join). The descriptor state they read, when it does not exist
   yet, is built for them only: from the rows that make or end a descriptor
   record plus those rows (:func:`fcap.analyze.state.fds.subset`), and dropped
   after the replay.

When step 1 would keep more than :func:`cap` rows (a ruleset whose conditions
name few raw fields), the replay evaluates every event of the rules' types
instead. Step 1 costs a query plan of the size of the ruleset (~0.1 s for
Falco's stable rules, ~1 s with the incubating and sandbox ones), so small
captures (under :data:`MIN_EVENTS` events) skip it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fcap.analyze.compile import CompiledRule, plan
from fcap.analyze.compile.ruleset import with_prefilter

#: Captures with fewer events are not pre-filtered (the plan costs more than it saves).
MIN_EVENTS = 500_000
#: Step 1 keeps at most this share of the capture's events (and at least MIN_CAP rows).
CAP_SHARE = 0.25
MIN_CAP = 1_000_000


def cap(events: int) -> int:
    """The most rows step 1 may keep for a capture of ``events`` events."""
    return max(MIN_CAP, int(events * CAP_SHARE))


def relaxation(rules: Sequence[CompiledRule]) -> str:
    """Some rule's relaxation holds, event types included.

    The rules' dispatch on the event type (:func:`fcap.analyze.compile.plan.dispatch`)
    with the relaxations as predicates, so DuckDB keeps the long ``IN`` lists as
    expressions (outside a ``CASE`` they become joins) and tests each event
    against the rules of its type only.
    """
    if not rules:
        return "false"
    relaxed = [dataclasses.replace(r, predicate=r.relaxed if r.relaxed is not None else "true")
               for r in rules]
    test = f"({plan.dispatch(relaxed, plan.first_leaf)}) IS NOT NULL"
    if all(r.event_types is not None for r in rules) and len({r.evttype_sql for r in rules}) == 1:
        union: frozenset[str] = frozenset().union(*(r.event_types or () for r in rules))
        return f"({with_prefilter('true', union, rules[0].evttype_sql)} AND {test})"
    return f"({test})"


@dataclass
class Staged:
    """The table of one staged replay (dropped by :meth:`drop`)."""

    rows: str  # scan positions (``rn``) of the rows the exact conditions are evaluated on
    kept: int = 0
    partial_fd: bool = False  # a descriptor state was built for those rows only

    def drop(self, con: Any) -> None:
        if self.partial_fd:
            from fcap.analyze.state import stages

            stages.drop_partial(con)
        con.execute(f"DROP TABLE IF EXISTS {self.rows}")


def stage(con: Any, rules: Sequence[CompiledRule], name: str, events: int) -> Staged | None:
    """The rows some rule's ``raw`` relaxation accepts, into table ``name``.

    Returns None (nothing left behind) when they are more than :func:`cap`.
    """
    from fcap.analyze import enrich

    st = Staged(rows=name)
    limit = cap(events)
    try:
        st.kept = enrich.candidates(con, name, relaxation(rules), limit=limit + 1)
    except BaseException:
        st.drop(con)
        raise
    if st.kept > limit:
        st.drop(con)
        return None
    return st
