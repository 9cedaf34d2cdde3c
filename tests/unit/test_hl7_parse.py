"""HL7 ORU^R01 parsing, ACK/NAK building and per-patient windows."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import hl7
import pytest

from producers.hl7_parse import Hl7Reject, build_ack, parse_oru, parse_time
from producers.hl7_windows import PatientWindows

NOW = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
ORU = (
    "MSH|^~\\&|MON|ICU|MEDSTREAM|HOSP|20260101120000||ORU^R01^ORU_R01|MSG0001|P|2.5\n"
    "PID|1||MRN123^^^HOSP^MR||DOE^JOHN||19700101|M\n"
    "OBR|1|||VITALS|||20260101120000\n"
    "OBX|1|NM|8867-4^Heart rate^LN||82|/min|||||F|||20260101120005\n"
    "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F\n"
    "OBX|3|NM|8310-5^Body temperature^LN||99.5|[degF]|||||F\n"
    "OBX|4|NM|12345-6^Unknown^LN||1|x|||||F\n"
    "OBX|5|NM|9279-1^Resp rate^LN||abc|/min|||||F\n"
    "OBX|6|NM|8480-6^SBP^LN||120|mm[Hg]|||||X\n"
)


def test_vital_signs_are_extracted_by_loinc_and_mdc_code() -> None:
    message = parse_oru(ORU, NOW)
    values = {(o.channel, round(o.value, 2)) for o in message.observations}
    assert values == {("hr", 82.0), ("spo2", 97.0), ("temp", 37.5)}
    assert message.control_id == "MSG0001" and message.patient_id == "MRN123"
    assert message.unknown_codes == ["12345-6"] and message.invalid_values == 1
    hr = next(o for o in message.observations if o.channel == "hr")
    assert hr.time == datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)  # OBX-14


def test_time_defaults_to_obr7_and_honours_offsets() -> None:
    message = parse_oru(ORU, NOW)
    spo2 = next(o for o in message.observations if o.channel == "spo2")
    assert spo2.time == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_time("20260101130000+0100") == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_time("") is None  # absent: the caller falls back to OBR-7, MSH-7, receipt
    berlin = ZoneInfo("Europe/Berlin")  # HL7 times without an offset are the sender's local time
    assert parse_time("20260701140000", berlin) == datetime(2026, 7, 1, 12, tzinfo=UTC)
    message = parse_oru(ORU, NOW, berlin)
    assert {o.time.hour for o in message.observations} == {11}  # 12:00 CET = 11:00 UTC


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("this is not HL7", "AR", "malformed"),
        (ORU.replace("ORU^R01^ORU_R01", "ADT^A01"), "AR", "unsupported_type"),
        (ORU.replace("|MSG0001|", "||"), "AR", "missing_field"),
        (ORU.replace("MRN123^^^HOSP^MR", ""), "AE", "missing_field"),
        (
            "MSH|^~\\&|M|I|||20260101||ORU^R01|X1|P|2.5\rPID|1||P1\rOBX|1|NM|99-9^?^LN||1\r",
            "AE",
            "no_vitals",
        ),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(text: str, code: str, reason: str) -> None:
    with pytest.raises(Hl7Reject) as info:
        parse_oru(text, NOW)
    assert (info.value.ack_code, info.value.reason) == (code, reason)


@pytest.mark.parametrize(
    "text",
    ["00010101000000", "garbage", "202613", "20260230", "20260101250000", "2026-01-01T12:00:00",
     "20260101120000+2500", "1.5", "99991231235959-1200", "18991231"],
)
@pytest.mark.parametrize("zone", [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("Pacific/Kiritimati")])
def test_every_malformed_time_is_an_error_naming_the_field(text: str, zone) -> None:
    with pytest.raises(Hl7Reject) as info:
        parse_time(text, zone, "OBX-14")
    assert (info.value.ack_code, info.value.reason) == ("AE", "invalid_time")
    assert str(info.value).startswith("OBX-14 ") and text not in str(info.value)


@pytest.mark.parametrize(
    ("good", "field"),
    [("|||20260101120005", "OBX-14 of OBX 1"), ("|||20260101120000\n", "OBR-7"),
     ("|20260101120000||", "MSH-7")],
)
def test_a_malformed_time_anywhere_rejects_the_message(good: str, field: str) -> None:
    text = ORU.replace(good, good.replace("20260101", "00010101"), 1)
    with pytest.raises(Hl7Reject) as info:  # year 1 in Berlin: once "year 0 is out of range"
        parse_oru(text, NOW, ZoneInfo("Europe/Berlin"))
    assert info.value.reason == "invalid_time" and str(info.value).startswith(field)


def test_times_far_after_receipt_are_refused() -> None:
    with pytest.raises(Hl7Reject) as info:
        parse_oru(ORU.replace("20260101120005", "20270101120005"), NOW)
    assert info.value.reason == "invalid_time" and "after receipt" in str(info.value)


@pytest.mark.parametrize(
    ("obx", "expected"),
    [("8867-4^HR^LN||1.5|Hz", ("hr", 90.0)), ("8310-5^T^LN||310|K", ("temp", 36.85)),
     ("8310-5^T^LN||98.6|[degF]", ("temp", 37.0)), ("8480-6^SBP^LN||16|kPa", ("sbp", 120.0)),
     ("150456^MDC_PULS_OXIM_SAT_O2^MDC||0.97|262656^MDC_DIM_DIMLESS^MDC", ("spo2", 97.0)),
     ("9279-1^RR^LN||0.25|/s", ("rr", 15.0))],
)
def test_units_are_converted_to_the_channel_unit(obx: str, expected: tuple[str, float]) -> None:
    text = ORU.split("OBX|1|")[0] + f"OBX|1|NM|{obx}|||||F\n"
    (observation,) = parse_oru(text, NOW).observations
    assert observation.channel == expected[0]
    assert observation.value == pytest.approx(expected[1], abs=0.01)


@pytest.mark.parametrize(
    ("unit", "reason"), [("", "missing_unit"), ("furlong", "unknown_unit"), ("mm[Hg]", "unknown_unit")]
)
def test_an_unusable_unit_rejects_the_message_naming_it(unit: str, reason: str) -> None:
    text = ORU.replace("|82|/min|", f"|82|{unit}|")
    with pytest.raises(Hl7Reject) as info:
        parse_oru(text, NOW)
    assert (info.value.ack_code, info.value.reason) == ("AE", reason)
    assert "OBX 1 (8867-4)" in str(info.value) and (unit in str(info.value) or "no unit" in str(info.value))


def test_accept_ack_echoes_the_control_id() -> None:
    ack = hl7.parse(build_ack(ORU, "AA"))
    assert str(ack.segment("MSA")(1)) == "AA" and str(ack.segment("MSA")(2)) == "MSG0001"
    assert str(ack.segment("MSH")(9)) == "ACK^R01^ACK"


def test_nak_carries_the_error_for_garbage_too() -> None:
    for text in (ORU.replace("MRN123^^^HOSP^MR", ""), "garbage"):
        with pytest.raises(Hl7Reject) as info:
            parse_oru(text, NOW)
        ack = hl7.parse(build_ack(text, info.value.ack_code, info.value))
        assert str(ack.segment("MSA")(1)) == info.value.ack_code
        assert str(ack.segment("MSA")(3)) == str(info.value)
        assert str(ack.segment("ERR")(3)) == info.value.err_code


def test_windows_accumulate_per_patient_and_end_at_the_latest_observation() -> None:
    buffers = PatientWindows(length=5, interval_s=60.0)
    first = parse_oru(ORU, NOW)
    window = buffers.add("P1", "bed", first.observations)
    assert window.start == datetime(2026, 1, 1, 11, 56, tzinfo=UTC)
    assert window.values[-1][:2] == [82.0, 97.0] and window.values[0] == [None] * 6
    later = parse_oru(ORU.replace("20260101120005", "20260101120200"), NOW)
    window = buffers.add("P1", "bed", [o for o in later.observations if o.channel == "hr"])
    assert window.values[-3][:2] == [82.0, 97.0] and window.values[-1][0] == 82.0
    other = buffers.add("P2", "bed", first.observations)
    assert other.values[-2] == [None] * 6


def test_window_buffers_are_bounded() -> None:
    buffers = PatientWindows(length=3, interval_s=60.0, max_patients=2)
    observations = parse_oru(ORU, NOW).observations
    for patient in ("P1", "P2", "P3"):
        buffers.add(patient, "bed", observations)
    window = buffers.add("P1", "bed", [o for o in observations if o.channel == "temp"])
    assert window.values[-1][0] is None  # P1 was evicted: its heart rate is gone, not invented
