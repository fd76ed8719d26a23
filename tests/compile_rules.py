"""Hand-built rules (the shape fcap.analyze.rules produces) for compiler/engine tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from fcap.analyze.condition.parser import parse_condition


class Prio(IntEnum):
    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7


@dataclass(frozen=True)
class FakeRule:
    name: str
    condition_text: str
    output: str
    priority: Prio = Prio.WARNING
    tags: frozenset[str] = frozenset()
    enabled: bool = True
    source: str = "syscall"
    desc: str = ""
    skip_if_unknown_filter: bool = False
    warn_evttypes: bool = True
    condition: object = field(default=None)

    def __post_init__(self) -> None:
        if self.condition is None:
            object.__setattr__(self, "condition", parse_condition(self.condition_text))


@dataclass(frozen=True)
class FakeRuleSet:
    rules: tuple[FakeRule, ...]


def ruleset(*rules: FakeRule) -> FakeRuleSet:
    return FakeRuleSet(tuple(rules))
