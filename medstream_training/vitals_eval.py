"""Evaluation of the vitals model: risk vs the NEWS2 rule, HR forecast vs the last value, on
held-out synthetic patients and on windows whose HR is real (medstream_training.vitals_real).

Windows of one trajectory (a synthetic patient, or a real 50-s HR segment with its synthetic
companions) are not independent, so every interval here resamples whole trajectories
(`stats.cluster_bootstrap`), not windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from medstream_training import VITALS_MODEL
from medstream_training.build import load_vitals
from medstream_training.export import read_config_parameters
from medstream_training.real_signals import HEARTPY_BPM, mean_rate, real_recordings
from medstream_training.stats import Estimate, calibration, cluster_bootstrap, regression_errors
from medstream_training.throughput import onnx_session
from medstream_training.train_vitals import VitalsTrainConfig, train_vitals
from medstream_training.vitals_data import NEWS2_ALERT, VitalsSet, concat, train_test_sets
from medstream_training.vitals_real import real_series, real_sets, split
from worker.news2 import news2_partial
from worker.preprocess.vitals import NORM_CENTRE

Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""windows [N, 60, 12] -> (risk [N], forecast [N, 6] in physical units)."""
HR = 0
RESAMPLES = 1000


def onnx_predict(session, batch: int = 512) -> Predict:
    """A Predict over an onnxruntime session of the exported vitals_lstm."""
    def run(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        risk, forecast = [], []
        for start in range(0, len(windows), batch):
            r, f = session.run(["risk", "forecast"], {"window": windows[start:start + batch]})
            risk.append(r[:, 0])
            forecast.append(f)
        return np.concatenate(risk), np.concatenate(forecast)
    return run


def torch_predict(model: torch.nn.Module) -> Predict:
    """A Predict over an in-process VitalsLSTM."""
    def run(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            risk, forecast = model(torch.from_numpy(windows))
        return risk.numpy()[:, 0], forecast.numpy()
    return run


def last_values(data: VitalsSet) -> np.ndarray:
    """The last observed value per channel, the typical value where a channel was never seen."""
    return np.where(np.isnan(data.last_observed), NORM_CENTRE, data.last_observed)


def _binary(kind: str, y: np.ndarray, score: np.ndarray, threshold: float) -> Callable[[np.ndarray], float]:
    def statistic(idx: np.ndarray) -> float:
        truth, s = y[idx], score[idx]
        pred = s >= threshold
        tp, fp, fn = int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())
        if kind == "roc_auc":
            return float(roc_auc_score(truth, s)) if 0 < truth.sum() < truth.size else np.nan
        if kind == "accuracy":
            return float((pred == truth).mean())
        if kind == "precision":
            return tp / (tp + fp) if tp + fp else np.nan
        if kind == "recall":
            return tp / (tp + fn) if tp + fn else np.nan
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan  # f1
    return statistic


def risk_report(data: VitalsSet, score: np.ndarray, threshold: float, seed: int,
                resamples: int = RESAMPLES) -> dict[str, Estimate]:
    """Accuracy, precision, recall, F1 at `threshold` and ROC AUC, each with a cluster interval."""
    y = data.risk.astype(bool)
    return {k: cluster_bootstrap(_binary(k, y, np.asarray(score, float), threshold), data.groups, seed, resamples)
            for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}


def _rmse(pred: np.ndarray, truth: np.ndarray) -> Callable[[np.ndarray], float]:
    return lambda idx: float(np.sqrt(np.mean((pred[idx] - truth[idx]) ** 2)))


def hr_forecast_report(data: VitalsSet, forecast: np.ndarray, seed: int,
                       resamples: int = RESAMPLES) -> dict[str, Estimate]:
    """Next-step HR RMSE of the model and of the last value, their paired difference, the bias."""
    truth, model, last = data.next_values[:, HR], forecast[:, HR], last_values(data)[:, HR]
    model_rmse, last_rmse = _rmse(model, truth), _rmse(last, truth)
    statistics = {"lstm_rmse": model_rmse, "last_rmse": last_rmse,
                  "difference": lambda idx: model_rmse(idx) - last_rmse(idx),
                  "bias": lambda idx: float(np.mean(model[idx] - truth[idx]))}
    return {k: cluster_bootstrap(f, data.groups, seed, resamples) for k, f in statistics.items()}


def evaluate_set(predict: Predict, data: VitalsSet, seed: int, resamples: int = RESAMPLES) -> dict[str, object]:
    """Every figure the card shows for one set of windows."""
    risk, forecast = predict(data.windows)
    last = last_values(data)
    return {
        "n": len(data.windows), "trajectories": int(np.unique(data.groups).size),
        "patients": data.patients, "positive_rate": float(data.risk.mean()),
        "risk": risk_report(data, risk, 0.5, seed, resamples),
        "news2_now": risk_report(data, news2_partial(last).astype(float), NEWS2_ALERT, seed, resamples),
        "calibration": calibration(data.risk, risk),
        "hr": hr_forecast_report(data, forecast, seed, resamples),
        "lstm_errors": regression_errors(forecast, data.next_values),
        "locf_errors": regression_errors(last, data.next_values),
    }


def evaluate_real(predict: Predict, test: dict[str, VitalsSet], seed: int,
                  resamples: int = RESAMPLES) -> dict[str, dict[str, object]]:
    """evaluate_set per real recording and pooled over all of them (`all`)."""
    results = {name: evaluate_set(predict, data, seed, resamples) for name, data in test.items()}
    results["all"] = evaluate_set(predict, concat(list(test.values())), seed, resamples)
    return results


def recording_summary() -> list[dict[str, object]]:
    """Per real recording: sensor, rate, duration, mean rate of our beats vs heartpy's figure."""
    return [{"name": rec.name, "kind": rec.kind, "fs": rec.fs, "seconds": rec.signal.size / rec.fs,
             "source": rec.source, "bpm": mean_rate(rec), "heartpy_bpm": HEARTPY_BPM.get(rec.name)}
            for rec in real_recordings()]


def paired(shipped: Predict, candidate: Predict, data: VitalsSet, seed: int) -> dict[str, Estimate]:
    """Candidate minus shipped model on the same windows: HR RMSE and risk ROC AUC."""
    (r0, f0), (r1, f1) = shipped(data.windows), candidate(data.windows)
    y, hr = data.risk.astype(bool), data.next_values[:, HR]
    rmse0, rmse1 = _rmse(f0[:, HR], hr), _rmse(f1[:, HR], hr)
    auc0, auc1 = _binary("roc_auc", y, r0, 0.5), _binary("roc_auc", y, r1, 0.5)
    return {"hr_rmse": cluster_bootstrap(lambda i: rmse1(i) - rmse0(i), data.groups, seed),
            "roc_auc": cluster_bootstrap(lambda i: auc1(i) - auc0(i), data.groups, seed),
            "candidate_hr_rmse": cluster_bootstrap(rmse1, data.groups, seed),
            "candidate_roc_auc": cluster_bootstrap(auc1, data.groups, seed)}


def retrain_check(shipped: Predict, seed: int, epochs: int = VitalsTrainConfig.epochs) -> dict[str, object]:
    """Train a candidate on the synthetic training patients plus the real training windows and
    compare it with the shipped model on every test set (the shipped model is not replaced)."""
    syn_train, syn_test = train_test_sets(seed)
    train_parts, test_parts = split(real_series())
    real_train = real_sets(train_parts, seed)
    data = concat([syn_train, *real_train.values()])
    started = time.process_time()
    candidate = torch_predict(train_vitals(data, VitalsTrainConfig(epochs=epochs, seed=seed)))
    cpu_s = time.process_time() - started
    test = real_sets(test_parts, seed)
    sets = {"synthetic": syn_test, **test, "all real": concat(list(test.values()))}
    return {"windows": len(data.windows), "real_windows": len(data.windows) - len(syn_train.windows),
            "cpu_s": cpu_s, "sets": {name: paired(shipped, candidate, d, seed) for name, d in sets.items()}}


def evaluate_vitals(repository: Path, checkpoints: Path, seed: int, threads: int,
                    retrain: bool = False) -> dict[str, object]:
    """The exported ONNX model on held-out synthetic patients and on real-HR windows, the
    ONNX-vs-torch export check and (with `retrain`) the real-window retraining check."""
    onnx_path = repository / VITALS_MODEL / "1" / "model.onnx"
    session = onnx_session(onnx_path, threads)
    predict = onnx_predict(session)
    _, synthetic = train_test_sets(seed)
    _, test_parts = split(real_series())
    model, version = load_vitals(checkpoints / f"{VITALS_MODEL}.pt")
    (risk, forecast), (ref_risk, ref_forecast) = (p(synthetic.windows[:256]) for p in (predict, torch_predict(model)))
    params = read_config_parameters(repository / VITALS_MODEL / "config.pbtxt")
    return {
        "synthetic": evaluate_set(predict, synthetic, seed),
        "real": evaluate_real(predict, real_sets(test_parts, seed), seed),
        "recordings": recording_summary(),
        "retrain": retrain_check(predict, seed) if retrain else None,
        "onnx_max_abs_diff": float(max(np.abs(risk - ref_risk).max(), np.abs(forecast - ref_forecast).max())),
        "version": version, "sha256": params.get("model_sha256", ""),
        "size_bytes": onnx_path.stat().st_size, "model": model, "session": session,
    }
