"""Markdown tables shared by the model card's sections (medstream_training.card, vitals_card)."""

from __future__ import annotations

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
METRIC_HEADER = "| model | accuracy | precision | recall | F1 | ROC AUC |\n|---|---|---|---|---|---|"


def metric_row(name: str, report: dict) -> str:
    """One METRIC_HEADER row: each metric printed as given (an Estimate prints its interval)."""
    return f"| {name} | " + " | ".join(str(report[k]) for k in METRICS) + " |"


def calibration_table(cal: tuple) -> list[str]:
    """Brier score, ECE and the reliability table of `stats.calibration`."""
    brier, ece, rows = cal
    return [f"Brier score {brier:.3f}, expected calibration error {ece:.3f}.", "",
            "| predicted bin | n | mean predicted | observed rate |", "|---|---|---|---|",
            *(f"| {b} | {n} | {p:.2f} | {r:.2f} |" for b, n, p, r in rows)]
