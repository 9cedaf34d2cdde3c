"""Priority at the edge: which lane (STAT or routine) an event is published to (docs/lanes.md).

Pure functions. The sources, strongest first: the producer's flag (`--priority stat|routine`,
MEDSTREAM_PRIORITY), then the event's own priority (DICOM RequestedProcedurePriority
(0040,1003), else StudyPriorityID (0032,000C); HL7 TQ1-9, else ORC-7.6), then the producer-side
rules (MEDSTREAM_LANES__STAT_RULES). A value this module does not know is routine, reported
back as `Priority.unknown` so that the caller counts and logs it.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from producers.settings import ProducerSettings
from worker.lanes import ROUTINE, STAT
from worker.settings import KindSettings

log = logging.getLogger(__name__)

#: DICOM RequestedProcedurePriority (STAT, HIGH, ROUTINE, MEDIUM, LOW) and the retired
#: StudyPriorityID (HIGH, MED, LOW)
DICOM_LANES = {"STAT": STAT, "HIGH": STAT, "ROUTINE": ROUTINE, "MEDIUM": ROUTINE, "MED": ROUTINE,
               "LOW": ROUTINE}
#: HL7 v2 priority codes (table 0485): Stat, ASAP, Routine, Preop, Callback, Timing critical
HL7_LANES = {"S": STAT, "A": STAT, "R": ROUTINE, "P": ROUTINE, "C": ROUTINE, "T": ROUTINE}
FLAGS = ("auto", STAT, ROUTINE)  # the producer flag; auto: from the event and the rules


@dataclass(frozen=True)
class Priority:
    """The lane an event asks for; `unknown` is a priority value no table knows (-> routine)."""

    lane: str = ROUTINE
    unknown: str | None = None


ROUTINE_PRIORITY = Priority()


def from_code(code: str, table: Mapping[str, str]) -> Priority | None:
    """The lane of one priority code; None when the code is empty."""
    value = code.strip().upper()
    if not value:
        return None
    lane = table.get(value)
    return Priority(lane) if lane else Priority(ROUTINE, value[:16])


def rule_matches(rule: Mapping[str, str], attributes: Callable[[str], Any]) -> bool:
    """Every keyword of `rule` matches the attribute's value (fnmatch, case-insensitive)."""
    return bool(rule) and all(
        fnmatch.fnmatchcase(str(attributes(k) or "").strip().upper(), pattern.upper())
        for k, pattern in rule.items())


def dicom_priority(ds: Any, rules: Sequence[Mapping[str, str]] = ()) -> Priority:
    """A DICOM dataset's lane: its priority attributes, else the rules (STAT when one matches)."""
    for keyword in ("RequestedProcedurePriority", "StudyPriorityID"):
        found = from_code(str(ds.get(keyword, "") or ""), DICOM_LANES)
        if found is not None:
            return found

    def attribute(keyword: str) -> Any:
        return ds.get(keyword, "")

    return Priority(STAT) if any(rule_matches(r, attribute) for r in rules) else Priority()


def hl7_priority(text: str) -> Priority:
    """An HL7 v2 message's lane from TQ1-9 (priority, CWE), else ORC-7.6 (TQ priority)."""
    segments = [s for s in text.replace("\n", "\r").split("\r") if s.strip()]
    component = segments[0][4] if segments and segments[0].startswith("MSH") and len(
        segments[0]) > 4 else "^"
    for name, index, part in (("TQ1", 9, 0), ("ORC", 7, 5)):
        for segment in segments:
            fields = segment.split("|")
            if fields[0] != name or len(fields) <= index:
                continue
            components = fields[index].split("~")[0].split(component)
            if len(components) > part:
                found = from_code(components[part], HL7_LANES)
                if found is not None:
                    return found
    return Priority()


def publish_topic(settings: ProducerSettings, block: KindSettings, found: Priority,
                  count_unknown: Callable[[], None]) -> str:
    """The topic to publish to: the flag (`settings.priority`) wins, else `found`; STAT needs
    lanes on and the kind's stat topic, else it goes to the routine topic.

    An unknown priority value is published routine, counted and logged (the value only: never
    a patient identifier).
    """
    flag = settings.priority
    lane = flag if flag in (STAT, ROUTINE) else found.lane
    if flag not in (STAT, ROUTINE) and found.unknown is not None:
        count_unknown()
        log.warning("unknown priority %r: published as routine", found.unknown)
    stat = block.stat_topic if settings.lanes.enabled else None
    return stat if lane == STAT and stat else block.topic
