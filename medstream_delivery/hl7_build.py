"""HL7 v2.5 ORU^R01 messages for study reports and alerts, built with hl7apy (pure).

One message per report; MSH-10 is the report's deterministic control id, so an interface
engine recognises a re-send. Study: OBR-2/-3 carry the order and accession numbers when known,
NM OBXs per class (highest and mean instance probability), a CE OBX with the conclusion, an ST OBX with the Study
Instance UID, and an NTE saying the result is not verified. Alert: OBXs for the risk, NEWS2
total, band and sub-scores. Every message passes hl7apy's strict validation.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Group, Message

from medstream_delivery.fhir_build import NOT_VERIFIED
from medstream_delivery.identity import Patient, Resolver, Study
from medstream_delivery.keys import control_id
from medstream_delivery.reports import AlertReport, Report, StudyReport

VERSION = "2.5"
_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))
STUDY_UID_CODE = "110180^Study Instance UID^DCM"
NEWS2_CODE = "1104051000000101^NEWS2 total score^SCT"


def escape(text: str) -> str:
    """HL7 v2 escaping of the delimiters (and line breaks dropped) for a free-text value."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text.replace("\r", " ").replace("\n", " ")


def hl7_time(moment: datetime) -> str:
    """HL7 DTM in UTC with an explicit offset: YYYYMMDDHHMMSS+0000."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def _header(report: Report, sender: tuple[str, str], receiver: tuple[str, str]) -> Message:
    message = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    msh = message.msh
    msh.msh_3, msh.msh_4 = escape(sender[0]), escape(sender[1])
    msh.msh_5, msh.msh_6 = escape(receiver[0]), escape(receiver[1])
    msh.msh_7 = hl7_time(report.produced_at)
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = control_id(report)
    msh.msh_11 = "P"
    return message


def _patient(result: Group, patient: Patient) -> None:
    pid = result.add_group("ORU_R01_PATIENT").pid
    kind = "PI" if patient.pseudonymous else "MR"
    pid.pid_3 = f"{escape(patient.value)}^^^{escape(patient.authority)}^{kind}"
    # the name is unknown here: the identifier with name type S (coded pseudo-name)
    pid.pid_5 = f"{escape(patient.value)}^^^^^^S"


class _Observations:
    """Adds OBX segments to one ORDER_OBSERVATION group, numbering them 1, 2, ..."""

    def __init__(self, order: Group, status: str, when: str, equipment: str) -> None:
        self._order, self._status, self._when, self._equipment = order, status, when, equipment
        self._count = 0

    def add(self, value_type: str, code: str, value: str) -> None:
        self._count += 1
        obx = self._order.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1, obx.obx_2, obx.obx_3 = str(self._count), value_type, code
        obx.obx_5, obx.obx_11, obx.obx_14 = value, self._status, self._when
        obx.obx_18 = self._equipment


def _order(result: Group, code: str, when: str, reported: str, status: str,
           study: Study | None = None) -> Group:
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    obr = order.obr
    obr.obr_1 = "1"
    if study is not None and study.order:
        obr.obr_2 = escape(study.order)
    if study is not None and study.accession:
        obr.obr_3 = escape(study.accession)
    obr.obr_4, obr.obr_7, obr.obr_22, obr.obr_25 = code, when, reported, status
    order.add_segment("NTE").nte_3 = escape(NOT_VERIFIED)
    return order


def _number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def study_message(report: StudyReport, resolver: Resolver, sender: tuple[str, str],
                  receiver: tuple[str, str]) -> Message:
    """ORU^R01 of one study report (Unmapped propagates from the resolver)."""
    patient, study = resolver.patient(report.patient), resolver.study(report.study_uid)
    message = _header(report, sender, receiver)
    result = message.add_group("ORU_R01_PATIENT_RESULT")
    _patient(result, patient)
    status = ("F" if report.status == "final" else "C") if report.complete else "P"
    when = hl7_time(report.study_time or report.produced_at)
    model = escape(report.model)
    order = _order(result, f"{model}^AI result of {model}^L", when,
                   hl7_time(report.produced_at), status, study)
    obx = _Observations(order, status, when, escape(f"{report.model} {report.model_version}"))
    for finding in report.findings:
        label = escape(finding.label)
        obx.add("NM", f"{label}^highest instance probability of {label}^L",
                _number(finding.probability))
        if finding.mean is not None:
            obx.add("NM", f"{label}-mean^mean probability of {label}^L", _number(finding.mean))
    top = escape(report.conclusion.label)
    obx.add("CE", "conclusion^AI conclusion^L", f"{top}^{top}^L")
    obx.add("ST", STUDY_UID_CODE, study.study_uid)
    message.validate()
    return message


def alert_message(report: AlertReport, resolver: Resolver, sender: tuple[str, str],
                  receiver: tuple[str, str]) -> Message:
    """ORU^R01 of one alert: risk and NEWS2."""
    patient = resolver.patient(report.patient)
    message = _header(report, sender, receiver)
    result = message.add_group("ORU_R01_PATIENT_RESULT")
    _patient(result, patient)
    when = hl7_time(report.event_time)
    order = _order(result, f"alert^vitals alert {report.state}^L", when,
                   hl7_time(report.produced_at), "F")
    obx = _Observations(order, "F", when, escape(f"{report.model} {report.model_version}"))
    obx.add("NM", "risk^risk of clinical deterioration^L", _number(report.risk))
    if report.news2 is not None:
        obx.add("NM", NEWS2_CODE, str(report.news2))
    if report.news2_band:
        obx.add("ST", "news2-band^NEWS2 band^L", escape(report.news2_band))
    for name, points in report.news2_subscores:
        parameter = escape(name)
        obx.add("NM", f"news2-{parameter}^NEWS2 sub-score {parameter}^L", str(points))
    message.validate()
    return message


def message_for(report: Report, resolver: Resolver, sender: tuple[str, str],
                receiver: tuple[str, str]) -> str:
    """The ER7 text of the report's ORU^R01 (segments separated by CR)."""
    build = study_message if isinstance(report, StudyReport) else alert_message
    return build(report, resolver, sender, receiver).to_er7()
