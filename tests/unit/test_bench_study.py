"""The study benchmark's pure parts: latency extraction, the result check, medians, Markdown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from medstream_tools.bench import studylatency
from worker.contracts import StudyResult

T0 = 1_800_000_000.0


def _result(instances: int = 3, **changes: object) -> StudyResult:
    result = StudyResult(
        study_uid="1.2.3", revision=1, completion="quiet", complete=True, patient_id="pseudo-x",
        instances={"total": instances, "predicted": instances, "skipped": 0, "dead_lettered": 0},
        series=[], models=[{"model": "brain", "instances": instances}],
        reasons={"skipped": {}, "dead_lettered": {}}, anomalies={}, missing_required=[],
        study_time=None, first_seen=datetime.fromtimestamp(T0 + 1, UTC),
        last_seen=datetime.fromtimestamp(T0 + 3, UTC),
        produced_at=datetime.fromtimestamp(T0 + 5.5, UTC))
    return replace(result, **changes)


def test_run_figures_measure_from_the_last_prediction() -> None:
    figures = studylatency.run_figures(
        sent_at=T0, last_ack=T0 + 0.5, predictions=[T0 + 1, T0 + 3, T0 + 2],
        result_at=T0 + 5.5, result=_result(), quiet_s=2.0)
    assert figures == pytest.approx({
        "send_s": 0.5, "last_ack_to_last_prediction_s": 2.5,
        "last_prediction_to_result_s": 2.5, "minus_quiet_s": 0.5,
        "reported_latency_s": 2.5, "study_wall_s": 5.5})
    with pytest.raises(ValueError):
        studylatency.run_figures(sent_at=T0, last_ack=T0, predictions=[], result_at=T0,
                                 result=_result(), quiet_s=2.0)


def test_exactly_one_final_result_counting_every_instance() -> None:
    good = _result()
    assert studylatency.check_result([good], 3, "brain") is good
    with pytest.raises(ValueError, match="one study result, got 2"):
        studylatency.check_result([good, replace(good, revision=2)], 3, "brain")
    with pytest.raises(ValueError, match="one study result, got 0"):
        studylatency.check_result([], 3, "brain")
    with pytest.raises(ValueError, match="instances"):
        studylatency.check_result([good], 4, "brain")
    with pytest.raises(ValueError, match="forced"):
        studylatency.check_result([replace(good, completion="forced", complete=False)], 3, "brain")
    with pytest.raises(ValueError, match="models"):
        studylatency.check_result([good], 3, "chest")


def test_medians_and_the_markdown_block() -> None:
    runs = [dict.fromkeys(studylatency.FIGURES, float(v)) for v in (3, 1, 2)]
    assert studylatency.summary(runs) == dict.fromkeys(studylatency.FIGURES, 2.0)
    block = studylatency.render({"when": "now", "load_avg_start": 1.0, "instances": 300,
                                 "what": "slices", "quiet_s": 2.0, "tick_s": 1.0, "runs": runs})
    assert block.startswith(studylatency.BEGIN) and block.endswith(studylatency.END)
    assert "| **median** | **2.00** |" in block and "`quiet_s` 2 s" in block
    assert block.count("\n| ") == 5  # head, 3 runs, median (the separator starts with "|-")
