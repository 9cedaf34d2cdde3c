"""Study results and vitals alerts end to end: real broker, real Triton, real sample DICOMs.

One worker run (the harness's fixture routing rules): a multi-series study (chest radiographs
that are predicted, MR instances that routing skips, a radiograph without pixel data that is
dead-lettered) gives exactly one final result with the right counts, a late instance exactly
one amendment; a study with bad input (another patient's instance, a future acquisition time,
an instance without StudyInstanceUID) is answered for its majority patient, with the anomalies
counted and `complete` false; a patient whose
vitals deteriorate and recover gets exactly one alert raised and one cleared, with NEWS2.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from medstream_tools.soak.fixture_scans import FIXTURE_MODEL
from tests.integration.studies_kit import (
    DETERIORATED,
    NORMAL,
    Reader,
    alerts,
    all_topics,
    instance,
    radiograph,
    recent_start,
    results,
    wait,
    windows,
)
from tests.support.harness import TopicsWorker, collect, publish
from worker.settings import Settings

pytestmark = pytest.mark.integration

STUDY, BAD = generate_uid(), generate_uid()
DX, MR, EMPTY, BAD_SERIES = (generate_uid() for _ in range(4))


def study_scans() -> list[tuple[str, bytes]]:
    scans = [radiograph(STUDY, DX, seed) for seed in range(5)]
    scans += [instance(STUDY, MR, sample="MR_small.dcm") for _ in range(2)]  # skipped
    return scans + [radiograph(STUDY, EMPTY, 5, pixels=False)]  # dead letter


def bad_scans() -> list[tuple[str, bytes]]:
    return [instance(BAD, BAD_SERIES, patient="pseudo-bad"),
            instance(BAD, BAD_SERIES, patient="pseudo-bad",
                     AcquisitionDate="20990101", AcquisitionTime="120000"),
            instance(BAD, BAD_SERIES, patient="pseudo-intruder"),
            instance(BAD, BAD_SERIES, patient="pseudo-bad", StudyInstanceUID=None)]


PATTERN = [NORMAL] * 3 + [DETERIORATED] * 5 + [NORMAL] * 4


def test_study_results_amendment_bad_input_and_alerts(settings: Settings, topic_factory,
                                                      tmp_path: Path) -> None:
    topics, study_topics = all_topics(topic_factory)
    env = study_topics.env(quiet_s=2, alert_consecutive=3, clear_consecutive=3,
                           alert_repeat_s=3600, reorder_s=3)
    worker = TopicsWorker(settings, topics, tmp_path / "w", extra_env=env).start()
    scans, vitals = study_scans() + bad_scans(), windows("pseudo-alert", PATTERN,
                                                         recent_start(len(PATTERN)))
    studies, episode = Reader(settings, study_topics.results), Reader(settings, study_topics.alerts)
    try:
        worker.wait_ready()
        publish(settings, topics.scans, [(STUDY.encode(), value) for _, value in scans])
        publish(settings, topics.vitals, vitals)
        wait(worker, "both results", lambda: results(studies, STUDY) and results(studies, BAD))
        late_uid, late = radiograph(STUDY, DX, 6)
        publish(settings, topics.scans, [(STUDY.encode(), late)])
        wait(worker, "the amendment", lambda: len(results(studies, STUDY)) >= 2)
        wait(worker, "raised and cleared", lambda: len(alerts(episode, "pseudo-alert")) >= 2)
        outputs = collect(settings, topics, lambda o: len(o) >= len(scans) + len(vitals) + 1, 30)
        unattributed = worker.metric("medstream_study_unattributed_total",
                                     {"reason": "missing_study_uid"})
        worker.stop()
        final, amended, answered = *results(studies, STUDY), *results(studies, BAD)
        assert Counter(r.revision for r in results(studies, STUDY)) == {1: 1, 2: 1}
        raised_cleared = alerts(episode, "pseudo-alert")
    finally:
        worker.stop()
        studies.close(), episode.close()

    assert (final.revision, final.status, final.completion, final.complete) == (
        1, "final", "quiet", True)
    assert final.instances == {"total": 8, "predicted": 5, "skipped": 2, "dead_lettered": 1}
    assert final.lanes == {"routine": 8}  # lanes off: every outcome, dead letter too, is routine
    by_series = {s["series_uid"]: s for s in final.series}
    assert (by_series[DX]["modality"], by_series[DX]["predicted"]) == ("DX", 5)
    assert (by_series[MR]["modality"], by_series[MR]["skipped"]) == ("MR", 2)
    assert (by_series[EMPTY]["modality"], by_series[EMPTY]["dead_lettered"]) == ("DX", 1)
    assert final.reasons == {"skipped": {"rule": 2}, "dead_lettered": {"no_pixel_data": 1}}
    (model,) = final.models
    assert model["model"] == FIXTURE_MODEL and model["instances"] == 5
    for label, top in model["top"].items():
        assert len(top) == 5 and {t["sop_uid"] for t in top} == {uid for uid, _ in scans[:5]}
        assert top[0]["probability"] == model["probabilities"][label]["max"]
    assert final.patient_id == "pseudo-study" and final.latency_s >= 2

    assert (amended.revision, amended.status, amended.instances["predicted"]) == (2, "amended", 6)
    assert late_uid not in {uid for uid, _ in scans}

    assert answered.instances["total"] == 2 and answered.patient_id == "pseudo-bad"
    assert answered.anomalies == {"clock_skew": 1, "patient_mismatch": 1}
    assert not answered.complete  # another patient's instance: never a confident answer
    assert unattributed == 1  # the instance without StudyInstanceUID

    assert [(a.status, a.seq, a.episode) for a in raised_cleared] == [
        ("raised", 0, 1), ("cleared", 1, 1)]
    raised, cleared = raised_cleared
    assert raised.alert_id == cleared.alert_id and raised.event_id == "pseudo-alert-w5"
    assert raised.lane == cleared.lane == "routine"
    assert cleared.event_id == "pseudo-alert-w10" and cleared.peak_risk >= 0.5
    assert raised.news2 == {"score": 13, "band": "high", "missing": [], "subscores": {
        "rr": 3, "spo2": 3, "sbp": 3, "hr": 2, "temp": 2}}
    assert (cleared.news2["score"], cleared.news2["band"]) == (0, "low")
    news2 = {o.json()["event_id"]: o.json()["outputs"]["news2"]["score"] for o in outputs
             if o.topic == topics.predictions and o.json()["kind"] == "vitals"}
    assert news2 == {f"pseudo-alert-w{n}": 13 if 3 <= n < 8 else 0 for n in range(len(PATTERN))}
