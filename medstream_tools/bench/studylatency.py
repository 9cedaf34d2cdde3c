"""Pure side of the study benchmark: what one run measured, medians over runs, Markdown.

Times are epoch seconds. A prediction's time is its Kafka timestamp (set by the worker's
producer when the prediction is acknowledged, before the input's offset is committed); the
study result's time is its own Kafka timestamp; both come from the worker's clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from worker.contracts import StudyResult

BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"
FIGURES = ("send_s", "last_ack_to_last_prediction_s", "last_prediction_to_result_s",
           "minus_quiet_s", "reported_latency_s", "study_wall_s")


def run_figures(*, sent_at: float, last_ack: float, predictions: Sequence[float],
                result_at: float, result: StudyResult, quiet_s: float) -> dict[str, float]:
    """One run's figures: the last instance's prediction -> the study result (raw and minus
    the quiet timer), the result's own `latency_s`, and the study's wall time (first instance
    sent -> result)."""
    if not predictions:
        raise ValueError("no prediction: nothing to measure from")
    last_prediction = max(predictions)
    raw = result_at - last_prediction
    return {"send_s": last_ack - sent_at,
            "last_ack_to_last_prediction_s": last_prediction - last_ack,
            "last_prediction_to_result_s": raw, "minus_quiet_s": raw - quiet_s,
            "reported_latency_s": result.latency_s, "study_wall_s": result_at - sent_at}


def check_result(results: Sequence[StudyResult], instances: int, model: str) -> StudyResult:
    """The one final result of a study of `instances` predicted instances, all by `model`;
    ValueError saying what differs otherwise."""
    if len(results) != 1:
        raise ValueError(f"expected one study result, got {len(results)}")
    result = results[0]
    expected = {"total": instances, "predicted": instances, "skipped": 0, "dead_lettered": 0}
    problems = []
    if result.status != "final" or result.completion != "quiet" or not result.complete:
        problems.append(f"status {result.status}/{result.completion}, complete={result.complete}")
    if result.instances != expected:
        problems.append(f"instances {result.instances}, expected {expected}")
    if [(m["model"], m["instances"]) for m in result.models] != [(model, instances)]:
        problems.append(f"models {[(m['model'], m['instances']) for m in result.models]}")
    if problems:
        raise ValueError("; ".join(problems))
    return result


def summary(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Median of every figure over the runs."""
    return {f: statistics.median(r[f] for r in runs) for f in FIGURES}


def render(result: dict) -> str:
    """The Markdown block: settings, one row per run and the medians."""
    head = ("run", "send s", "last ack -> last prediction s", "last prediction -> result s",
            "minus quiet_s", "result latency_s", "study wall s")
    rows = [(str(n + 1), *(f"{r[f]:.2f}" for f in FIGURES)) for n, r in enumerate(result["runs"])]
    rows.append(("**median**", *(f"**{v:.2f}**" for v in summary(result["runs"]).values())))
    runs = f"{len(result['runs'])} run{'s' if len(result['runs']) != 1 else ''}"
    table = "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                      + ["| " + " | ".join(r) + " |" for r in rows])
    return (f"{BEGIN}\n### Study completion latency ({result['when']}, load avg "
            f"{result['load_avg_start']} at start)\n\n"
            f"One study of {result['instances']} {result['what']} (one StudyInstanceUID, one "
            f"series, real pixel data) sent as fast as the broker takes it to a fresh worker "
            f"with studies enabled (`quiet_s` {result['quiet_s']:g} s, `tick_s` "
            f"{result['tick_s']:g} s), {runs}; every run gave one `final` "
            f"result counting every instance as predicted.\n\n{table}\n{END}")
