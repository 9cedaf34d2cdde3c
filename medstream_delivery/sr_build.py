"""DICOM Comprehensive 3D SR (TID 1500 Measurement Report) of a study report, with highdicom.

One measurement group per report: the model as the algorithm (name + version) and as the
observing device, the most probable class as a qualitative evaluation (Finding), each class's
highest and mean instance probability as measurements (UCUM "1", derivation Maximum / Mean), and the instances the result rests on as source
images and evidence when the result names them with their SOP classes (else a study-level
SR: it lies in the study it reports on). Series and SOP Instance UIDs are derived from the report
(medstream_delivery.keys), so a re-send stores the same instance again.
"""

from __future__ import annotations

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pynetdicom.sop_class import Comprehensive3DSRStorage

from medstream_delivery.identity import Resolver
from medstream_delivery.keys import sr_instance_uid, sr_series_uid, uid
from medstream_delivery.reports import StudyReport

SCHEME = "99MEDSTREAM"  # private coding scheme of model classes (PS3.16 8.2: "99" prefix)
IMAGING = Code("363679005", "SCT", "Imaging")
FINDING = Code("121071", "DCM", "Finding")
UNITLESS = Code("1", "UCUM", "no units")
MAXIMUM, MEAN = Code("56851009", "SCT", "Maximum"), Code("373098007", "SCT", "Mean")  # CID 3488
SERIES_NUMBER = 990
MANUFACTURER = "medstream"


def _label(label: str, meaning: str) -> Code:
    return Code(label, SCHEME, meaning[:64])


def _evidence(report: StudyReport, resolver: Resolver) -> list[Dataset]:
    """One minimal dataset per source instance: the patient, study and instance identifiers.

    Without source instances (the result does not name their SOP classes), highdicom still
    needs one dataset for the patient and study modules: the SR's own identity stands in, and
    `structured_report` drops the evidence sequence derived from it (a study-level result).
    """
    patient, study = resolver.patient(report.patient), resolver.study(report.study_uid)
    images = [(resolver.uid(i.series_uid), resolver.uid(i.sop_uid), i.sop_class_uid)
              for i in report.images]
    evidence = []
    for series_uid, sop_uid, sop_class_uid in images or [
            (sr_series_uid(report), sr_instance_uid(report), Comprehensive3DSRStorage)]:
        ds = Dataset()
        ds.PatientID = patient.value
        ds.PatientName = f"{patient.value}^" if patient.pseudonymous else ""
        ds.PatientBirthDate = ds.PatientSex = ds.ReferringPhysicianName = ds.StudyID = ""
        ds.AccessionNumber = study.accession or ""
        ds.StudyInstanceUID = study.study_uid
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SOPClassUID = series_uid, sop_uid, sop_class_uid
        if report.study_time is not None:
            ds.StudyDate = report.study_time.strftime("%Y%m%d")
            ds.StudyTime = report.study_time.strftime("%H%M%S")
        evidence.append(ds)
    return evidence


def _group(report: StudyReport, evidence: list[Dataset]) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    top = report.conclusion
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=uid("sr-tracking", sr_instance_uid(report)),
            identifier=f"{report.model} result"[:64]),
        algorithm_id=hd.sr.AlgorithmIdentification(name=report.model,
                                                   version=report.model_version),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(FINDING, _label(top.label, top.label))],
        measurements=[
            hd.sr.Measurement(name=_label(f.label, f"probability of {f.label}"),
                              value=round(value, 4), unit=UNITLESS, derivation=derivation)
            for f in report.findings
            for derivation, value in ((MAXIMUM, f.probability), (MEAN, f.mean))
            if value is not None],
        source_images=[hd.sr.SourceImageForMeasurementGroup(ds.SOPClassUID, ds.SOPInstanceUID)
                       for ds in evidence] if report.images else None)


def structured_report(report: StudyReport, resolver: Resolver) -> hd.sr.Comprehensive3DSR:
    """The SR instance of one study report (Unmapped propagates from the resolver)."""
    evidence = _evidence(report, resolver)
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=uid("sr-device", report.model, report.model_version), name=report.model[:64],
        manufacturer_name=MANUFACTURER, model_name=report.model_version[:64])
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    content = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=IMAGING,
        imaging_measurements=[_group(report, evidence)], title=codes.DCM.ImagingMeasurementReport)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=content, series_instance_uid=sr_series_uid(report),
        series_number=SERIES_NUMBER, sop_instance_uid=sr_instance_uid(report),
        instance_number=report.revision, manufacturer=MANUFACTURER, is_complete=report.complete,
        is_final=True, series_description=f"AI result {report.model}"[:64])
    if not report.images:
        del sr.CurrentRequestedProcedureEvidenceSequence  # it would name the SR itself
    return sr
