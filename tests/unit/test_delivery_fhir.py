"""FHIR builders (pure) and the answer classification of the FHIR client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from delivery_samples import MRN_SYSTEM, alert_report, identity_map, study_report
from fhir.resources.R4B.bundle import Bundle

from medstream_delivery.fhir_build import IDENTIFIER_SYSTEM, bundle
from medstream_delivery.fhir_send import _classify, outcome_text
from medstream_delivery.identity import PSEUDONYM_SYSTEM, PseudonymsOnly, Unmapped
from medstream_delivery.outcomes import Rejected, RejectReason, TargetUnavailable


def _resources(b: Bundle) -> dict[str, list]:
    out: dict[str, list] = {}
    for entry in b.entry:
        out.setdefault(entry.resource.get_resource_type(), []).append(entry.resource)
    return out


def test_study_bundle_is_valid_r4_and_every_entry_is_a_conditional_create() -> None:
    b = bundle([study_report()], PseudonymsOnly())
    parsed = Bundle.model_validate_json(b.model_dump_json())  # schema validation, again
    assert parsed.type == "transaction"
    for entry in parsed.entry:
        (identifier,) = entry.resource.identifier
        assert entry.request.method == "POST"
        assert entry.request.ifNoneExist == f"identifier={IDENTIFIER_SYSTEM}|{identifier.value}"
        assert entry.fullUrl.startswith("urn:uuid:")
    kinds = _resources(parsed)
    assert [len(kinds[k]) for k in ("Device", "DiagnosticReport", "Observation")] == [1, 1, 2]


def test_diagnostic_report_content() -> None:
    b = bundle([study_report(status="amended", revision=2)], PseudonymsOnly())
    (report,) = _resources(b)["DiagnosticReport"]
    assert report.status == "amended"
    assert report.subject.identifier.system == PSEUDONYM_SYSTEM
    assert report.subject.identifier.value == study_report().patient
    assert report.imagingStudy[0].identifier.value == "urn:oid:2.25.1001"
    assert report.conclusionCode[0].coding[0].code == "pneumonia"
    assert "0.88" in report.conclusion and "revision 2" in report.conclusion
    assert report.basedOn is None  # no order numbers without the identity map
    urls = {e.fullUrl for e in b.entry}
    assert {r.reference for r in report.result} <= urls
    observations = _resources(b)["Observation"]
    assert {float(o.valueQuantity.value) for o in observations} == {0.12, 0.88}
    assert {float(o.component[0].valueQuantity.value) for o in observations} == {0.1, 0.7}
    device_url = next(e.fullUrl for e in b.entry if e.resource.get_resource_type() == "Device")
    assert {o.device.reference for o in observations} == {device_url}


def test_an_incomplete_study_is_a_partial_report_of_preliminary_observations() -> None:
    kinds = _resources(bundle([study_report(complete=False)], PseudonymsOnly()))
    assert kinds["DiagnosticReport"][0].status == "partial"
    assert {o.status for o in kinds["Observation"]} == {"preliminary"}
    assert "study incomplete" in kinds["DiagnosticReport"][0].conclusion


def test_identifiers_are_deterministic_and_change_with_the_revision() -> None:
    def ids(b: Bundle) -> list[str]:
        return [e.resource.identifier[0].value for e in b.entry]

    first, again = bundle([study_report()], PseudonymsOnly()), bundle([study_report()], PseudonymsOnly())
    amended = bundle([study_report(revision=2, status="amended")], PseudonymsOnly())
    assert ids(first) == ids(again)
    assert ids(first)[0] == ids(amended)[0]  # the model's Device is shared
    assert not set(ids(first)[1:]) & set(ids(amended)[1:])


def test_alert_bundle_risk_assessment_rests_on_the_news2_observation() -> None:
    b = Bundle.model_validate_json(bundle([alert_report()], PseudonymsOnly()).model_dump_json())
    kinds = _resources(b)
    (risk,) = kinds["RiskAssessment"]
    assert float(risk.prediction[0].probabilityDecimal) == 0.91
    (news2,) = kinds["Observation"]
    assert (news2.code.coding[0].code, news2.valueInteger) == ("1104051000000101", 7)
    assert [(c.code.text, c.valueInteger) for c in news2.component][:2] == [
        ("NEWS2 sub-score rr", 3), ("NEWS2 sub-score spo2", 3)]
    assert news2.interpretation[0].text == "NEWS2 band high"
    by_url = {e.fullUrl: e.resource for e in b.entry}
    assert [by_url[ref.reference] for ref in risk.basis] == [news2]
    assert by_url[risk.performer.reference].get_resource_type() == "Device"


def test_alert_without_a_news2_score_has_no_basis() -> None:
    b = bundle([alert_report(news2=None, news2_band=None)], PseudonymsOnly())
    (risk,) = _resources(b)["RiskAssessment"]
    assert risk.basis is None and "Observation" not in _resources(b)


def test_identity_map_gives_the_mrn_study_uid_and_order_numbers(tmp_path: Path) -> None:
    b = bundle([study_report()], identity_map(tmp_path / "ids.sqlite"))
    (report,) = _resources(b)["DiagnosticReport"]
    assert (report.subject.identifier.system, report.subject.identifier.value) == (MRN_SYSTEM, "MRN-4711")
    assert report.imagingStudy[0].identifier.value == "urn:oid:1.2.826.0.1.3680043.8.498.1"
    assert {(r.identifier.type.coding[0].code, r.identifier.value) for r in report.basedOn} == {
        ("ACSN", "ACC-42"), ("PLAC", "ORD-7")}


def test_an_unmapped_patient_is_refused(tmp_path: Path) -> None:
    resolver = identity_map(tmp_path / "ids.sqlite")
    with pytest.raises(Unmapped):
        bundle([study_report(patient="PSN-unknown")], resolver)


def _response(*statuses: str) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "transaction-response",
                       "entry": [{"response": {"status": s}} for s in statuses]}).encode()


def test_created_and_existing_entries_are_delivered() -> None:
    assert _classify(200, _response("201 Created", "200 OK"), 2) == ["201 Created", "200 OK"]


@pytest.mark.parametrize("status", [400, 404, 409, 412, 422])
def test_a_refusal_of_the_resource_is_a_rejection_with_the_outcome_text(status: int) -> None:
    outcome = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": "Observation.status: bad"}]})
    with pytest.raises(Rejected) as caught:
        _classify(status, outcome.encode(), 2)
    assert caught.value.reason is RejectReason.TARGET_REJECTED
    assert f"HTTP {status}: Observation.status: bad" == str(caught.value)


@pytest.mark.parametrize(("status", "body"), [
    (500, b"oops"), (503, b""), (429, b""), (401, b""), (302, b""),
    (200, b"<html>proxy error</html>"), (200, b'{"resourceType": "Patient"}'),
    (200, json.dumps({"resourceType": "Bundle", "type": "batch-response"}).encode()),
])
def test_other_answers_are_retried(status: int, body: bytes) -> None:
    with pytest.raises(TargetUnavailable):
        _classify(status, body, 2)


def test_a_response_missing_entries_or_with_failed_entries_is_retried() -> None:
    with pytest.raises(TargetUnavailable):
        _classify(200, _response("201 Created"), 2)
    with pytest.raises(TargetUnavailable):
        _classify(200, _response("201 Created", "500 Internal Server Error"), 2)


def test_outcome_text_falls_back_to_the_body() -> None:
    assert outcome_text(b"plain refusal") == "plain refusal"
