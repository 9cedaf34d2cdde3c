"""The routing rules as data: conditions on DICOM attributes, rules, the rule set.

Built by `worker.routing.loader` from the rules file (docs/routing.md); evaluated by
`worker.routing.matcher`. Everything is frozen and free of I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IMAGE = "image"
"""The `SOPClassUID` value that stands for every image storage SOP class."""


@dataclass(frozen=True)
class AttrTest:
    """One attribute test. `op` is one of:

    - "in": some value of the attribute equals one of `values` (case-insensitive; for
      SOPClassUID the values are UIDs, with `IMAGE` for every image storage class);
    - "regex": some value matches `pattern` (re.search, case-insensitive);
    - "range": some value is a number within [low, high] (either bound may be None);
    - "present": the attribute is present with a non-empty value (`values` is ("true",) or
      ("false",) for its negation).
    """

    keyword: str
    op: str
    values: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class All:
    """Every item holds (`all: []` always holds)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one item holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """The item does not hold."""

    item: Condition


Condition = AttrTest | All | AnyOf | Not


@dataclass(frozen=True)
class Route:
    """Send the instance to `model` (its declared `version` pinned when given)."""

    model: str
    version: str | None = None


@dataclass(frozen=True)
class SkipAction:
    """Skip the instance; `text` says why (written by the rules' author, shown in the record)."""

    text: str


@dataclass(frozen=True)
class Rule:
    """One rule: the first rule whose `when` holds decides."""

    name: str
    line: int  # 1-based line of the rule in the rules file
    when: Condition
    action: Route | SkipAction

    @property
    def is_catch_all(self) -> bool:
        """True when the rule matches every instance (no `when`, or `all: []`)."""
        return isinstance(self.when, All) and not self.when.items


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, in order."""

    source: Path
    rules: tuple[Rule, ...]

    @property
    def models(self) -> tuple[str, ...]:
        """Models the rules route to, in order of first mention, each once."""
        names = [r.action.model for r in self.rules if isinstance(r.action, Route)]
        return tuple(dict.fromkeys(names))

    def where(self, rule: Rule) -> str:
        """"triton_models/routing.yaml:12: rule 'chest'" for messages."""
        return f"{self.source}:{rule.line}: rule {rule.name!r}"
