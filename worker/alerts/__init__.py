"""Patient-level alerts: vitals window risks turned into alert episodes (docs/studies.md)."""
