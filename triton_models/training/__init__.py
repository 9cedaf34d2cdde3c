"""Training, data loading and evaluation code for the served models (needs the `train` extra)."""
