"""ORU^R01 builders (strict hl7apy validation of what we send) and the ACK check."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_samples import alert_report, identity_map, study_report
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from medstream_delivery.hl7_build import escape, message_for
from medstream_delivery.identity import PseudonymsOnly
from medstream_delivery.keys import control_id
from medstream_delivery.mllp_send import check_ack
from medstream_delivery.outcomes import Rejected, TargetUnavailable
from medstream_delivery.reports import Finding

SENDER, RECEIVER = ("MEDSTREAM", "RAD"), ("EHR", "HOSP")


def _strict(text: str):
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate()
    return message


def _segments(text: str, name: str) -> list[list[str]]:
    return [s.split("|") for s in text.split("\r") if s.startswith(name + "|")]


def test_study_oru_passes_strict_validation_with_a_deterministic_control_id() -> None:
    report = study_report()
    text = message_for(report, PseudonymsOnly(), SENDER, RECEIVER)
    message = _strict(text)
    assert message.msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert message.msh.msh_10.value == control_id(report) == control_id(study_report())
    assert len(control_id(report)) <= 20
    assert text == message_for(report, PseudonymsOnly(), SENDER, RECEIVER)


def test_study_oru_content() -> None:
    text = message_for(study_report(), PseudonymsOnly(), SENDER, RECEIVER)
    (pid,) = _segments(text, "PID")
    assert pid[3] == f"{study_report().patient}^^^MEDSTREAM^PI"
    obx = _segments(text, "OBX")
    assert [o[1] for o in obx] == ["1", "2", "3", "4", "5", "6"]
    assert [(o[2], o[3].split("^")[0], o[5]) for o in obx] == [
        ("NM", "normal", "0.12"), ("NM", "normal-mean", "0.1"), ("NM", "pneumonia", "0.88"),
        ("NM", "pneumonia-mean", "0.7"), ("CE", "conclusion", "pneumonia^pneumonia^L"),
        ("ST", "110180", "2.25.1001")]
    assert {o[11] for o in obx} == {"F"}
    (nte,) = _segments(text, "NTE")
    assert "not verified" in nte[3]


def test_amended_results_are_corrections() -> None:
    text = message_for(study_report(status="amended", revision=2), PseudonymsOnly(), SENDER,
                       RECEIVER)
    (obr,) = _segments(text, "OBR")
    assert obr[25] == "C" and {o[11] for o in _segments(text, "OBX")} == {"C"}
    partial = message_for(study_report(complete=False), PseudonymsOnly(), SENDER, RECEIVER)
    assert _segments(partial, "OBR")[0][25] == "P"
    assert control_id(study_report(revision=2)) != control_id(study_report())


def test_order_and_accession_numbers_from_the_identity_map(tmp_path: Path) -> None:
    text = message_for(study_report(), identity_map(tmp_path / "ids.sqlite"), SENDER, RECEIVER)
    _strict(text)
    (obr,) = _segments(text, "OBR")
    assert (obr[2], obr[3]) == ("ORD-7", "ACC-42")
    (pid,) = _segments(text, "PID")
    assert pid[3] == "MRN-4711^^^HOSP^MR"


def test_delimiters_in_labels_are_escaped() -> None:
    report = study_report(findings=(Finding("a|b^c&d~e\\f", 0.7), Finding("x", 0.3)))
    text = message_for(report, PseudonymsOnly(), SENDER, RECEIVER)
    _strict(text)
    assert escape("a|b^c&d~e\\f") in text and "a|b" not in text


def test_alert_oru_carries_risk_and_news2() -> None:
    text = message_for(alert_report(), PseudonymsOnly(), SENDER, RECEIVER)
    _strict(text)
    obx = {o[3].split("^")[0]: o[5] for o in _segments(text, "OBX")}
    assert obx == {"risk": "0.91", "1104051000000101": "7", "news2-band": "high",
                   "news2-rr": "3", "news2-spo2": "3", "news2-sbp": "0", "news2-hr": "1",
                   "news2-temp": "0"}


def _ack(code: str, acked: str, extra: str = "") -> bytes:
    return (f"MSH|^~\\&|EHR|HOSP|MEDSTREAM|RAD|20240301||ACK^R01^ACK|9|P|2.5\r"
            f"MSA|{code}|{acked}{extra}").encode()


@pytest.mark.parametrize("code", ["AA", "CA"])
def test_accepting_acks(code: str) -> None:
    assert check_ack(_ack(code, "abc"), "abc") == code


@pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR"])
def test_negative_acks_are_rejections_with_the_nak_text(code: str) -> None:
    with pytest.raises(Rejected) as caught:
        check_ack(_ack(code, "abc", "|unknown patient"), "abc")
    assert str(caught.value) == f"{code}: unknown patient"


@pytest.mark.parametrize("block", [b"", b"hello", b"MSH|^~\\&|x", _ack("AA", "other"),
                                   _ack("ZZ", "abc")])
def test_garbage_or_foreign_acks_are_retried(block: bytes) -> None:
    with pytest.raises(TargetUnavailable):
        check_ack(block, "abc")
