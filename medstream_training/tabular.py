"""The tabular reference: logistic regression and an RBF SVM on sklearn's breast-cancer data."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from medstream_training.stats import Estimate, binary_report

TEST_FRACTION = 0.3


def baseline_models(seed: int) -> dict[str, object]:
    """Standardised LR and RBF-SVM pipelines."""
    return {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "svm_rbf": make_pipeline(StandardScaler(), SVC(kernel="rbf", random_state=seed)),
    }


def _score(model, x: np.ndarray) -> tuple[np.ndarray, float]:
    """(positive-class score, decision threshold): LR probability at 0.5, SVM margin at 0."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(x)[:, 1], 0.5
    return model.decision_function(x), 0.0


def run_baseline(seed: int = 0) -> tuple[dict[str, dict[str, Estimate]], int, int]:
    """Fit both models on a stratified 70/30 split; metrics on the held-out 30% (malignant = positive).

    Returns ({model: metrics}, n_train, n_test).
    """
    data = load_breast_cancer()
    y = (data.target == 0).astype(int)  # sklearn codes malignant as 0
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, y, test_size=TEST_FRACTION, stratify=y, random_state=seed
    )
    results = {}
    for name, model in baseline_models(seed).items():
        model.fit(x_train, y_train)
        score, threshold = _score(model, x_test)
        results[name] = binary_report(y_test, score, threshold=threshold, seed=seed)
    return results, len(y_train), len(np.asarray(y_test))
