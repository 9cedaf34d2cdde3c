"""HL7 v2 ORU^R01 vital-sign messages -> observations, and the ACK/NAK for each message.

Parsing uses the `hl7` library (python-hl7); nothing here touches sockets or Kafka.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

import hl7
from hl7.exceptions import HL7Exception

from producers.hl7_codes import channel_for
from producers.hl7_units import UnitError, to_canonical

log = logging.getLogger(__name__)

_PARSE_ERRORS = (HL7Exception, IndexError, KeyError, ValueError, TypeError)  # hl7.parse on garbage
ACCEPTED_STATUSES = frozenset({"", "F", "R", "P", "C", "S", "I"})  # OBX-11; X/D/W are not values
# HL7 table 0357 message error condition codes used in ERR-3
ERR_REQUIRED_FIELD, ERR_DATA_TYPE, ERR_UNSUPPORTED_TYPE, ERR_APPLICATION = (
    "101",
    "102",
    "200",
    "207",
)


_DTM = re.compile(r"\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?"
                  r"(?P<offset>[+-]\d{4})?")
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
"""Times in a year before this one are refused as malformed (e.g. 00010101000000)."""
MAX_AHEAD = timedelta(days=1)
"""Observation times more than this after receipt are refused (a wrong clock or date)."""


class Hl7Reject(Exception):
    """A message we answer with a NAK: `ack_code` AR (reject) or AE (error), `reason` slug."""

    def __init__(self, ack_code: str, reason: str, message: str, err_code: str) -> None:
        super().__init__(message)
        self.ack_code, self.reason, self.err_code = ack_code, reason, err_code


@dataclass(frozen=True)
class Observation:
    """One vital-sign value in its channel's canonical unit."""

    channel: str
    value: float
    time: datetime


@dataclass
class OruMessage:
    """What the listener needs from one ORU^R01 message (identifiers still in clear)."""

    control_id: str
    patient_id: str
    device_id: str
    observations: list[Observation]
    unknown_codes: list[str] = field(default_factory=list)
    invalid_values: int = 0


def _field(segment: hl7.Segment, number: int, component: int = 1, repeat: int = 1) -> str:
    try:
        return str(segment.extract_field(1, number, repeat, component) or "").strip()
    except (IndexError, AttributeError):
        return ""


def parse_time(text: str, local: tzinfo = UTC, name: str = "time") -> datetime | None:
    """HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) in UTC; None when `text` is empty.

    A time without an offset is in the sender's time zone `local`. Anything else - a malformed
    or impossible date, an offset beyond +/-14:00, a year before 1900 - raises Hl7Reject (AE)
    naming the field `name` (never the value: dates can identify a patient).
    """
    text = text.strip()
    if not text:
        return None
    match = _DTM.fullmatch(text)
    try:
        if match is None or (match["offset"] and not _valid_offset(match["offset"])):
            raise ValueError("not an HL7 DTM")
        moment = hl7.parse_datetime(text)
        if moment.year < EARLIEST.year:  # checked before converting: year 1 at UTC+1 is year 0
            raise Hl7Reject("AE", "invalid_time", f"{name} lies before {EARLIEST.year}",
                            ERR_DATA_TYPE)
        return (moment if match["offset"] else moment.replace(tzinfo=local)).astimezone(UTC)
    except (ValueError, TypeError, OverflowError) as exc:  # also year 9999 at UTC-12
        raise Hl7Reject("AE", "invalid_time", f"{name} is not a valid HL7 date/time",
                        ERR_DATA_TYPE) from exc


def _valid_offset(offset: str) -> bool:
    return int(offset[1:3]) <= 14 and int(offset[3:]) < 60


def normalise(text: str) -> str:
    """Segment separators as HL7 wants them (CR), whatever line endings the sender used."""
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r") + "\r"


def parse_oru(text: str, received_at: datetime, local: tzinfo = UTC) -> OruMessage:
    """Parse one ORU^R01 (times without offset are in `local`); raises Hl7Reject for a NAK."""
    try:
        message = hl7.parse(normalise(text))
        msh = message.segment("MSH")
    except _PARSE_ERRORS as exc:
        raise Hl7Reject(
            "AR", "malformed", f"not an HL7 v2 message: {type(exc).__name__}", ERR_APPLICATION
        ) from exc
    msg_type = f"{_field(msh, 9, 1)}^{_field(msh, 9, 2)}"
    control_id = _field(msh, 10)
    if msg_type != "ORU^R01":
        raise Hl7Reject(
            "AR",
            "unsupported_type",
            f"message type {msg_type} is not supported (only ORU^R01)",
            ERR_UNSUPPORTED_TYPE,
        )
    if not control_id:
        raise Hl7Reject(
            "AR", "missing_field", "MSH-10 message control id is empty", ERR_REQUIRED_FIELD
        )
    try:
        pid = message.segment("PID")
    except KeyError as exc:
        raise Hl7Reject("AE", "missing_field", "no PID segment", ERR_REQUIRED_FIELD) from exc
    patient_id = _field(pid, 3)
    if not patient_id:
        raise Hl7Reject(
            "AE", "missing_field", "PID-3 patient identifier is empty", ERR_REQUIRED_FIELD
        )
    default_time = _default_time(message, msh, received_at, local)
    result = OruMessage(control_id, patient_id, _device(message), [])
    for number, obx in enumerate(message.segments("OBX") if _has(message, "OBX") else [], 1):
        _add_observation(result, obx, number, default_time, received_at, local)
    if not result.observations:
        detail = (
            f"unknown observation codes {sorted(set(result.unknown_codes))}"
            if result.unknown_codes
            else "no numeric vital-sign OBX segment"
        )
        raise Hl7Reject("AE", "no_vitals", f"no usable vital sign: {detail}", ERR_DATA_TYPE)
    return result


def _has(message: hl7.Message, name: str) -> bool:
    return any(str(segment[0]) == name for segment in message)


def _default_time(
    message: hl7.Message, msh: hl7.Segment, received_at: datetime, local: tzinfo
) -> datetime:
    """OBR-7 observation time, else MSH-7, else the time we received the message."""
    obr = _field(message.segment("OBR"), 7) if _has(message, "OBR") else ""
    sent = parse_time(_field(msh, 7), local, "MSH-7")  # validated even when OBR-7 is set
    return _not_ahead(parse_time(obr, local, "OBR-7") or sent or received_at, received_at)


def _not_ahead(moment: datetime, received_at: datetime) -> datetime:
    if moment > received_at + MAX_AHEAD:
        raise Hl7Reject("AE", "invalid_time", "observation time lies more than a day after "
                        "receipt (check the sender's clock)", ERR_DATA_TYPE)
    return moment


def _device(message: hl7.Message) -> str:
    """OBX-18 equipment id of the first OBX carrying one, else MSH-3 sending application."""
    for obx in message.segments("OBX") if _has(message, "OBX") else []:
        equipment = _field(obx, 18)
        if equipment:
            return equipment
    return _field(message.segment("MSH"), 3) or "hl7"


def _add_observation(result: OruMessage, obx: hl7.Segment, number: int, default_time: datetime,
                     received_at: datetime, local: tzinfo) -> None:
    """Append OBX number `number` when it is a vital sign; Hl7Reject for a bad unit or time."""
    code, text = _field(obx, 3, 1), _field(obx, 3, 2)
    channel = channel_for(code, text)
    if channel is None:
        result.unknown_codes.append(code or text or "?")
        return
    if _field(obx, 11).upper() not in ACCEPTED_STATUSES:
        return
    try:
        value = float(_field(obx, 5))
    except ValueError:
        result.invalid_values += 1
        return
    try:
        value = to_canonical(channel, [_field(obx, 6, 1), _field(obx, 6, 2)], value)
    except UnitError as exc:
        raise Hl7Reject("AE", exc.reason, f"OBX {number} ({code or text}): {exc}",
                        ERR_DATA_TYPE) from exc
    moment = parse_time(_field(obx, 14), local, f"OBX-14 of OBX {number}") or default_time
    moment = _not_ahead(moment, received_at)
    if not math.isfinite(value):
        result.invalid_values += 1
        return
    result.observations.append(Observation(channel, value, moment))


def build_ack(text: str, ack_code: str, error: Hl7Reject | None = None) -> str:
    """The ACK for `text`: AA, or AE/AR with MSA-3 and an ERR segment naming the error.

    Works for unparseable input too (MSH fields that cannot be copied are left empty).
    """
    try:
        original = hl7.parse(normalise(text))
        msh = original.segment("MSH")
    except _PARSE_ERRORS:  # garbage: nothing to copy
        original, msh = None, None
    try:
        ack = original.create_ack(ack_code, application="MEDSTREAM")
    except (*_PARSE_ERRORS, AttributeError):  # no MSH, or one create_ack cannot copy
        control = _safe(_field(msh, 10)) if msh is not None else ""
        sender = _safe(_field(msh, 3)) if msh is not None else ""
        minimal = hl7.parse(
            f"MSH|^~\\&|{sender}||MEDSTREAM||{_now()}||ACK^R01^ACK|{control}|P|2.5\r"
        )
        ack = minimal.create_ack(ack_code, application="MEDSTREAM")
    if error is not None:
        detail = _safe(str(error))
        ack.segment("MSA").assign_field(detail[:80], 3)
        err = ack.create_segment([ack.create_field(["ERR"])])
        err.assign_field(error.err_code, 3, 1, 1)
        err.assign_field("E", 4)
        err.assign_field(detail[:250], 8)
        ack.append(err)
    return str(ack)


def _safe(text: str) -> str:
    """Text without HL7 delimiters, so it can sit in one field of the ACK."""
    return text.translate({ord(c): " " for c in "|^~\\&\r\n"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def slot_of(moment: datetime, interval_s: float) -> int:
    """Index of the grid slot holding `moment` (slots are counted from the Unix epoch)."""
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=interval_s))
