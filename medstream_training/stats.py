"""Evaluation statistics: classification metrics with confidence intervals, calibration, errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% interval and the method that produced the interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        if np.isnan(self.value):
            return "n/a"
        return f"{self.value:.3f} ({self.low:.3f}-{self.high:.3f})"


def wilson(successes: int, trials: int, z: float = 1.96) -> Estimate:
    """Proportion with a Wilson score interval (sound for tiny samples)."""
    if trials == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    p = successes / trials
    denom = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def bootstrap(metric, y: np.ndarray, score: np.ndarray, seed: int = 0, n: int = 1000) -> Estimate:
    """metric(y, score) with a percentile bootstrap interval (resamples lacking a class skipped)."""
    rng = np.random.default_rng(seed)
    value = float(metric(y, score))
    samples = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) < 2:
            continue
        samples.append(metric(y[idx], score[idx]))
    low, high = np.percentile(samples, [2.5, 97.5]) if samples else (np.nan, np.nan)
    return Estimate(value, float(low), float(high))


def binary_report(y: np.ndarray, score: np.ndarray, threshold: float = 0.5, seed: int = 0) -> dict[str, Estimate]:
    """Accuracy/precision/recall (Wilson), F1 and ROC AUC (bootstrap) for a positive-class score."""
    y = np.asarray(y).astype(int)
    pred = (np.asarray(score) >= threshold).astype(int)
    tp, fp, fn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum()), int(((pred == 0) & (y == 1)).sum())
    auc = bootstrap(roc_auc_score, y, score, seed) if len(np.unique(y)) == 2 else Estimate(np.nan, np.nan, np.nan)
    return {
        "accuracy": wilson(int((pred == y).sum()), len(y)),
        "precision": wilson(tp, tp + fp),
        "recall": wilson(tp, tp + fn),
        "f1": bootstrap(lambda a, b: f1_score(a, (b >= threshold).astype(int), zero_division=0), y, score, seed),
        "roc_auc": auc,
    }


def multiclass_report(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 for argmax predictions."""
    pred = probs.argmax(axis=1)
    return {
        "accuracy": accuracy_score(y, pred),
        "precision_macro": precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
    }


def calibration(y: np.ndarray, score: np.ndarray, bins: int = 5) -> tuple[float, float, list[tuple[str, int, float, float]]]:
    """(Brier score, expected calibration error, [(bin, count, mean predicted, observed rate)])."""
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(score, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_p, rate = float(score[mask].mean()), float(y[mask].mean())
            ece += mask.mean() * abs(mean_p - rate)
            rows.append((f"{edges[b]:.1f}-{edges[b + 1]:.1f}", int(mask.sum()), mean_p, rate))
    return float(np.mean((score - y) ** 2)), float(ece), rows


def regression_errors(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (RMSE, MAE)."""
    err = np.asarray(pred, dtype=float) - np.asarray(truth, dtype=float)
    return np.sqrt((err**2).mean(axis=0)), np.abs(err).mean(axis=0)


def cluster_bootstrap(statistic, groups: np.ndarray, seed: int = 0, n: int = 1000) -> Estimate:
    """statistic(indices) with a percentile interval from resampling whole groups with
    replacement (windows of one patient or one real segment are not independent samples).
    Replicates where the statistic is NaN (e.g. a resample lacking a class) are skipped."""
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        value = statistic(np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))]))
        if np.isfinite(value):
            samples.append(value)
    low, high = np.percentile(samples, [2.5, 97.5]) if samples else (np.nan, np.nan)
    return Estimate(float(statistic(np.arange(inverse.size))), float(low), float(high))
