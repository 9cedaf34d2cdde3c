"""The vitals_lstm section of the model card, from medstream_training.vitals_eval results."""

from __future__ import annotations

from medstream_training.card_tables import METRIC_HEADER, calibration_table, metric_row
from medstream_training.stats import Estimate
from medstream_training.vitals_data import HORIZON, NEWS2_ALERT
from medstream_training.vitals_real import (
    COMPANIONS,
    DETECTOR_ONLY,
    SPLIT_RECORDINGS,
    TEST_ONLY_RECORDINGS,
)
from worker.contracts import CHANNELS

VITALS_BEGIN = "<!-- vitals:begin (written by `medstream models evaluate-vitals`) -->"
VITALS_END = "<!-- vitals:end -->"
_UNITS = {"hr": "bpm", "spo2": "%", "rr": "/min", "sbp": "mmHg", "dbp": "mmHg", "temp": "°C"}


def _signed(e: Estimate, digits: int = 2) -> str:
    """A difference or bias with its interval: `+0.39 (+0.31, +0.49)`."""
    return f"{e.value:+.{digits}f} ({e.low:+.{digits}f}, {e.high:+.{digits}f})"


def _plain(e: Estimate, digits: int = 2) -> str:
    return f"{e.value:.{digits}f} ({e.low:.{digits}f}-{e.high:.{digits}f})"


def _role(name: str) -> str:
    if name == SPLIT_RECORDINGS[0]:
        return ("last 1/3 tests; its first 2/3 shaped the synthetic training HR (and trains the "
                "retraining candidate)")
    if name in SPLIT_RECORDINGS:
        return "last 1/3 tests; first 2/3 trains the retraining candidate only"
    if name in TEST_ONLY_RECORDINGS:
        return "test only (never trained on)"
    return "beat-detector check only (shorter than a window + horizon)" if name == DETECTOR_ONLY else "-"


def _recordings(rows: list[dict]) -> list[str]:
    lines = ["| recording | signal | rate | length | mean HR, ours | mean HR, heartpy | role here |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = f"{r['heartpy_bpm']:.1f}" if r["heartpy_bpm"] else "-"
        lines.append(f"| `{r['name']}`: {r['source']} | {r['kind'].upper()} | {r['fs']:.1f} Hz | "
                     f"{r['seconds']:.0f} s | {r['bpm']:.1f} bpm | {ref} | {_role(r['name'])} |")
    return lines


def _real_tables(real: dict[str, dict]) -> list[str]:
    risk = [("| test set | windows (segments) | positive | LSTM ROC AUC | NEWS2-now ROC AUC | "
            "LSTM recall / precision @0.5 | NEWS2 >= 5 recall / precision |"), "|---|---|---|---|---|---|---|"]
    hr = ["| test set | LSTM HR RMSE | last-value HR RMSE | LSTM minus last value | LSTM bias |",
          "|---|---|---|---|---|"]
    for name, r in real.items():
        label = "**all real**" if name == "all" else f"`{name}`"
        m, b = r["risk"], r["news2_now"]
        risk.append(f"| {label} | {r['n']:,} ({r['trajectories']}) | {r['positive_rate']:.1%} | "
                    f"{m['roc_auc']} | {b['roc_auc']} | {m['recall'].value:.2f} / {m['precision'].value:.2f} | "
                    f"{b['recall'].value:.2f} / {b['precision'].value:.2f} |")
        h = r["hr"]
        hr.append(f"| {label} | {_plain(h['lstm_rmse'])} | {_plain(h['last_rmse'])} | "
                  f"{_signed(h['difference'])} | {_signed(h['bias'])} |")
    return [*risk, "", "Next-step heart rate (bpm) on the real series:", "", *hr]


def _retrain(check: dict | None) -> list[str]:
    if check is None:
        return ["(Not run this time: `medstream models evaluate-vitals --retrain-check`.)"]
    rows = [f"| {name} | {p['candidate_roc_auc']} | {_signed(p['roc_auc'], 3)} | "
            f"{_plain(p['candidate_hr_rmse'])} | {_signed(p['hr_rmse'])} |" for name, p in check["sets"].items()]
    return [(f"Candidate: trained like the shipped model on the synthetic patients plus "
             f"{check['real_windows']:,} real-HR windows (first 2/3 of `mitbih-208` and `heartpy-data3`, "
             f"{COMPANIONS} synthetic companions per segment), {check['windows']:,} windows in all, "
             f"{check['cpu_s']:.0f} s of CPU. Differences are candidate minus shipped on the same windows."), "",
            "| test set | candidate ROC AUC | AUC difference | candidate HR RMSE | HR RMSE difference |",
            "|---|---|---|---|---|", *rows]


def vitals_section(v: dict) -> list[str]:
    """The vitals_lstm section (between VITALS_BEGIN and VITALS_END)."""
    syn = v["synthetic"]
    lstm_rmse, lstm_mae = syn["lstm_errors"]
    locf_rmse, locf_mae = syn["locf_errors"]
    rows = [f"| {c} ({_UNITS[c]}) | {lstm_rmse[i]:.2f} | {lstm_mae[i]:.2f} | {locf_rmse[i]:.2f} | {locf_mae[i]:.2f} |"
            for i, c in enumerate(CHANNELS)]
    pooled = v["real"]["all"]["hr"]
    return [
        VITALS_BEGIN, "## vitals_lstm (LSTM, 60x12 window -> risk, next-step forecast)", "",
        f"- Version `{v['version']}`, sha256 `{v['sha256'][:16]}...`, {v['size_bytes']:,} bytes ONNX.",
        f"- Export check: ONNX vs torch max |diff| = {v['onnx_max_abs_diff']:.2e}.",
        ("- **What is real, what is synthetic, what is rule-derived.** Training: 300 synthetic patients "
         "whose HR *variability shape* is MIT-BIH 208's (first 2/3 of its HR series); every other channel, "
         "every deterioration episode and all missingness are simulated (`medstream_training/vitals_data.py`). "
         "Real-signal test windows (`vitals_real.py`): the HR channel is a real recording's heart rate in "
         f"absolute bpm (2 Hz, 50-s segments), each segment paired with {COMPANIONS} synthetic companions "
         "for spo2, rr, sbp, dbp and temp. **Every risk label is rule-derived**: a NEWS2-style partial score "
         f"(RR, SpO2, SBP, HR, temperature; air and alert assumed) >= {NEWS2_ALERT} within the next {HORIZON} "
         "steps of the true trajectory. No label comes from an outcome, a clinician or an annotation."),
        ("- Intervals: 95% percentile bootstrap over whole trajectories (a synthetic patient, or one real "
         "segment with its companions), not over windows, which overlap and share a patient. With 2 segments "
         "(`mitbih-208`, `heartpy-data2`) an interval only shows the spread between the two."), "",
        "### Real heart-rate recordings", "",
        *_recordings(v["recordings"]), "",
        ("Beats are our own (`medstream_training/real_signals.py`: ECG R peaks from a 5-15 Hz envelope; PPG "
         "systolic peaks after a 0.5-5 Hz band-pass, the highest within 0.6 of the local beat period so the "
         "dicrotic wave is not counted, weak peaks in lost signal dropped, intervals outside 40-180 bpm or 30% "
         "off their neighbours' median rejected). heartpy's own analysis (run once outside the project) agrees "
         "on the mean rate within 0.4 bpm, and 98-100% of the peaks it accepts lie within 50 ms of ours. "
         "Monitor-style rate: 60 s / mean of the last 8 accepted intervals, at 2 Hz."), "",
        "### On windows with real heart rate (held out from training)", "",
        ("Risk (label rule-derived, see above); ROC AUC with 95% intervals. Rule baseline: the partial "
         f"NEWS2 of the last observed values, alarm at >= {NEWS2_ALERT}:"), "",
        *_real_tables(v["real"]), "",
        (f"**Finding: on real heart rate the LSTM's HR forecast is worse than carrying the last value "
         f"forward** (pooled RMSE difference {_signed(pooled['difference'])} bpm) and biased towards the middle "
         "of its training range (negative bias at MIT-BIH 208's ~106 bpm, positive at heartpy-data2's "
         "~62 bpm). Its risk ranking is on a par with the rule's on these windows (intervals overlap), and "
         "the labels are the rule applied to partly synthetic data, so that says little clinically."), "",
        "### Retraining check: adding the real-HR windows to training", "",
        *_retrain(v.get("retrain")), "",
        ("The shipped model is **not** retrained with real windows: the gain is on the later part of the "
         "two recordings that also trained the candidate, not on the recording it never saw "
         "(`heartpy-data2`), so it is not the clear, general improvement a retrain needs."), "",
        "### On held-out synthetic patients", "",
        (f"{syn['n']:,} windows from {syn['patients']} synthetic patients whose HR variability comes from the "
         f"last third of the ECG; {syn['positive_rate']:.1%} positive. These figures measure how well the "
         "LSTM learned the rule and the simulator, not clinical deterioration."), "",
        METRIC_HEADER, metric_row("vitals_lstm risk (thr 0.5)", syn["risk"]),
        metric_row(f"current NEWS2 >= {NEWS2_ALERT} (rule baseline)", syn["news2_now"]), "",
        "Calibration of `risk`:", "", *calibration_table(syn["calibration"]), "",
        "Next-step forecast (physical units) vs carrying the last observation forward:", "",
        "| channel | LSTM RMSE | LSTM MAE | last-value RMSE | last-value MAE |", "|---|---|---|---|---|",
        *rows, "",
        "### What vitals_lstm must not be used for", "",
        ("- Any clinical decision, alarm or triage: it imitates a simplified NEWS2 rule on simulated "
         "patients; it was never shown a deterioration outcome. Use NEWS2 itself (the worker reports it "
         "beside the model) where a score is needed."),
        ("- `forecast` as a prediction of change: on real heart rate it is worse than the last value and "
         "biased; at best a smoothed last value, and not for HR outside the 60-95 bpm baselines it was trained on."),
        ("- Patients on oxygen or not alert (the rule assumes air and alert), children, arrhythmia "
         "detection (an 8-beat average hides it), or sampling other than one row per 0.5 s."),
        VITALS_END,
    ]
