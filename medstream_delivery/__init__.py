"""`medstream deliver`: study results and vitals alerts to the EHR (FHIR R4, HL7 v2 ORU^R01
over MLLP) and to PACS (DICOM SR by C-STORE), at least once, idempotently (docs/delivery.md)."""
