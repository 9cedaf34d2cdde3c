"""De-identification at the edge: keyed pseudonyms, DICOM PS3.15 basic profile, HL7 PID."""
