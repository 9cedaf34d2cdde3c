"""Study-level results: instance outcomes aggregated per StudyInstanceUID (docs/studies.md)."""
