"""Route one DICOM instance from its header: the first rule that holds decides.

Before any rule, an instance whose SOP class is not an image storage class (structured
reports, PDFs, presentation states, segmentations, waveforms, DICOMDIRs, or no SOP class at
all) is skipped as `non_image`: no rule can send it to an image model. When no rule holds the
instance is skipped as `no_route`. Pure: the header comes in as a `Lookup`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from worker.contracts.skip import SkipReason
from worker.routing.attributes import REPORTED, Lookup, is_image_storage, sop_class_name
from worker.routing.rules import IMAGE, All, AnyOf, AttrTest, Condition, Not, Route, Rule, RuleSet

SHOWN = frozenset((*REPORTED, "SliceThickness"))
"""Attributes whose values explanations may quote (coded values and sizes, no free text)."""


@dataclass(frozen=True)
class RouteTo:
    """The instance goes to `model`, as `rule` says."""

    model: str
    rule: Rule


@dataclass(frozen=True)
class SkipAs:
    """The instance is skipped for `reason`; `rule` is the skip rule that matched, if any."""

    reason: SkipReason
    rule: Rule | None


Decision = RouteTo | SkipAs


def _numbers(values: tuple[str, ...]) -> list[float]:
    out = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            out.append(number)
    return out


def _test_holds(test: AttrTest, lookup: Lookup) -> bool:
    values = lookup(test.keyword)
    if test.op == "present":
        return bool(values) == (test.values == ("true",))
    if test.op == "in":
        if test.keyword == "SOPClassUID":
            return any(v in test.values or (IMAGE in test.values and is_image_storage(v))
                       for v in values)
        return any(v.upper() in test.values for v in values)
    if test.op == "regex":
        assert test.pattern is not None
        return any(test.pattern.search(v) for v in values)
    low = -math.inf if test.low is None else test.low
    high = math.inf if test.high is None else test.high
    return any(low <= n <= high for n in _numbers(values))


def holds(condition: Condition, lookup: Lookup) -> bool:
    """True when `condition` holds for the instance behind `lookup`."""
    if isinstance(condition, AttrTest):
        return _test_holds(condition, lookup)
    if isinstance(condition, All):
        return all(holds(c, lookup) for c in condition.items)
    if isinstance(condition, AnyOf):
        return any(holds(c, lookup) for c in condition.items)
    return not holds(condition.item, lookup)


def describe(condition: Condition) -> str:
    """The condition in one line ("Modality in [CR, DX]")."""
    if isinstance(condition, AttrTest):
        if condition.op == "in":
            return f"{condition.keyword} in [{', '.join(condition.values)}]"
        if condition.op == "regex":
            assert condition.pattern is not None
            return f"{condition.keyword} matches /{condition.pattern.pattern}/"
        if condition.op == "range":
            return f"{condition.keyword} in range [{condition.low}, {condition.high}]"
        return f"{condition.keyword} {'present' if condition.values == ('true',) else 'absent'}"
    if isinstance(condition, Not):
        return f"not ({describe(condition.item)})"
    word = "all" if isinstance(condition, All) else "any"
    return f"{word} of ({'; '.join(describe(c) for c in condition.items)})"


def _shown(keyword: str, lookup: Lookup) -> str:
    values = lookup(keyword)
    if not values:
        return "absent"
    if keyword not in SHOWN:
        return "present"  # free text (SeriesDescription, ...) is never quoted
    if keyword == "SOPClassUID":
        return repr(sop_class_name(values[0]))
    return repr("\\".join(values))


def why_not(condition: Condition, lookup: Lookup) -> str | None:
    """None when `condition` holds, else the first reason it does not (no identifiers)."""
    if holds(condition, lookup):
        return None
    if isinstance(condition, AttrTest):
        return f"{condition.keyword} is {_shown(condition.keyword, lookup)}, wanted {describe(condition)}"
    if isinstance(condition, All):
        return next(w for c in condition.items if (w := why_not(c, lookup)) is not None)
    if isinstance(condition, AnyOf):
        return "none of: " + "; ".join(str(why_not(c, lookup)) for c in condition.items)
    return f"{describe(condition.item)} holds"


class Router:
    """Decides, for each instance, the model or the skip (see the module docstring)."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules

    def decide(self, lookup: Lookup) -> Decision:
        """The decision for the instance behind `lookup`."""
        sop = lookup("SOPClassUID")
        if not sop or not is_image_storage(sop[0]):
            return SkipAs(SkipReason.NON_IMAGE, None)
        for rule in self.rules.rules:
            if holds(rule.when, lookup):
                if isinstance(rule.action, Route):
                    return RouteTo(rule.action.model, rule)
                return SkipAs(SkipReason.RULE, rule)
        return SkipAs(SkipReason.NO_ROUTE, None)
