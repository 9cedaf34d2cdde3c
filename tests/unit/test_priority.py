"""Priority at the edge (producers/priority.py): DICOM, HL7, rules, the flag, unknown values."""

from __future__ import annotations

import pytest
from pydicom import Dataset

from producers.priority import (
    Priority,
    dicom_priority,
    hl7_priority,
    publish_topic,
    rule_matches,
)
from producers.settings import ProducerSettings
from worker.lanes import ROUTINE, STAT

CT_HEAD_ED = [{"Modality": "CT", "BodyPartExamined": "HEAD", "RequestingService": "EMERG*"}]


def dataset(**attributes: str) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"RequestedProcedurePriority": "STAT"}, Priority(STAT)),
    ({"RequestedProcedurePriority": "high"}, Priority(STAT)),
    ({"RequestedProcedurePriority": "ROUTINE", "StudyPriorityID": "HIGH"}, Priority(ROUTINE)),
    ({"StudyPriorityID": "HIGH"}, Priority(STAT)),
    ({"StudyPriorityID": "LOW"}, Priority(ROUTINE)),
    ({"RequestedProcedurePriority": "URGENTISSIMO"}, Priority(ROUTINE, "URGENTISSIMO")),
    ({}, Priority(ROUTINE)),
])
def test_dicom_priority_attributes(attributes: dict[str, str], expected: Priority) -> None:
    assert dicom_priority(dataset(**attributes)) == expected


def test_a_rule_makes_a_ct_head_from_the_emergency_department_stat() -> None:
    ed = dataset(Modality="CT", BodyPartExamined="head", RequestingService="Emergency Dept")
    ward = dataset(Modality="CT", BodyPartExamined="HEAD", RequestingService="Neurology")
    assert dicom_priority(ed, CT_HEAD_ED) == Priority(STAT)
    assert dicom_priority(ward, CT_HEAD_ED) == Priority(ROUTINE)
    # the event's own priority wins over the rules
    ed.RequestedProcedurePriority = "LOW"
    assert dicom_priority(ed, CT_HEAD_ED) == Priority(ROUTINE)


def test_an_empty_rule_matches_nothing() -> None:
    assert not rule_matches({}, lambda keyword: "CT")


MSH = "MSH|^~\\&|MON|ICU|MEDSTREAM|HOSP|20240101120000||ORU^R01|MSG1|P|2.5\r"


@pytest.mark.parametrize(("segments", "expected"), [
    ("TQ1|1||||||||S^Stat^HL70485\r", Priority(STAT)),
    ("ORC|RE|A1|B1||||^^^^^A\r", Priority(STAT)),
    ("TQ1|1||||||||R\rORC|RE|A1|B1||||^^^^^S\r", Priority(ROUTINE)),
    ("ORC|RE|A1|B1||||^^^^^Q\r", Priority(ROUTINE, "Q")),
    ("PID|1||123\r", Priority(ROUTINE)),
])
def test_hl7_priority_from_tq1_then_orc(segments: str, expected: Priority) -> None:
    assert hl7_priority(MSH + segments) == expected


def test_publish_topic_flag_event_and_unknown_values_are_counted() -> None:
    settings = ProducerSettings(_env_file=None)
    counted: list[int] = []

    def count() -> None:
        counted.append(1)

    def topic(found: Priority, flag: str = "auto", **lanes: object) -> str:
        chosen = settings.model_copy(update={"priority": flag,
                                             "lanes": settings.lanes.model_copy(update=lanes)})
        return publish_topic(chosen, chosen.scan, found, count)

    assert topic(Priority(STAT)) == "scans.stat"
    assert topic(Priority(ROUTINE), "stat") == "scans.stat"
    assert topic(Priority(STAT), "routine") == "scans"
    assert topic(Priority(ROUTINE, "WHENEVER")) == "scans"
    assert counted == [1]
    assert topic(Priority(STAT), "stat", enabled=False) == "scans"  # lanes off: one topic
    no_stat = settings.model_copy(update={"scan": settings.scan.model_copy(
        update={"stat_topic": None})})
    assert publish_topic(no_stat, no_stat.scan, Priority(STAT), count) == "scans"
