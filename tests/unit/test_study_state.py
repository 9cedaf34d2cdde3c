"""Study aggregation (pure): counts, model aggregates, deduplication, completeness, revisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations

from worker.contracts import (
    StudyEvent,
    decode_study_event,
    decode_study_result,
    encode_study_event,
    encode_study_result,
)
from worker.settings import StudyRoute, StudySettings
from worker.studies.state import State, apply_instance, close, due, expired

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
S = StudySettings(quiet_s=30, max_s=600, top_k=2, retain_s=3600)


def ev(sop: str, outcome: str = "predicted", *, at: float = 0.0, series: str = "1.2.1",
       modality: str = "CR", p: float = 0.5, patient: str | None = "pat-1",
       event_time: datetime | None = None, reason: str | None = None) -> StudyEvent:
    predicted = outcome == "predicted"
    return StudyEvent(
        study_uid="1.2", sop_uid=sop, outcome=outcome, seen_at=T0 + timedelta(seconds=at),  # type: ignore[arg-type]
        series_uid=series, modality=modality, patient_id=patient, event_time=event_time,
        model="scan_cnn" if predicted else None, model_version="1+sha" if predicted else None,
        probabilities={"normal": round(1 - p, 6), "pneumonia": p} if predicted else {},
        reason=reason)


def fold(*events: StudyEvent, settings: StudySettings = S) -> State:
    state = None
    for event in events:
        state, _ = apply_instance(state, event, 3, settings)
    assert state is not None
    return state


def test_counts_series_and_model_aggregates() -> None:
    state = fold(ev("a", p=0.9), ev("b", p=0.2), ev("c", p=0.6, series="1.2.2", modality="CT"),
                 ev("d", "dead_lettered", reason="pixel_decode", series="1.2.2", modality="CT"),
                 ev("e", "skipped", reason="no_route", series="1.2.3", modality="SR"))
    _, result = close(state, "quiet", T0.timestamp() + 100, S)
    assert result.instances == {"total": 5, "predicted": 3, "skipped": 1, "dead_lettered": 1}
    assert [(s["series_uid"], s["modality"], s["predicted"], s["skipped"], s["dead_lettered"])
            for s in result.series] == [("1.2.1", "CR", 2, 0, 0), ("1.2.2", "CT", 1, 0, 1),
                                        ("1.2.3", "SR", 0, 1, 0)]
    (model,) = result.models
    assert model["instances"] == 3
    assert model["probabilities"]["pneumonia"] == {"max": 0.9, "mean": round(1.7 / 3, 6)}
    assert model["top"]["pneumonia"] == [{"sop_uid": "a", "probability": 0.9},
                                         {"sop_uid": "c", "probability": 0.6}]
    assert result.reasons == {"dead_lettered": {"pixel_decode": 1}, "skipped": {"no_route": 1}}
    assert result.status == "final" and result.complete and result.patient_id == "pat-1"
    assert decode_study_result(encode_study_result(result)) == result


def test_redelivered_instance_changes_nothing() -> None:
    state = fold(ev("a", p=0.9))
    before = repr(state)
    state, anomalies = apply_instance(state, ev("a", p=0.9), 3, S)
    assert anomalies == ["duplicate"] and repr(state) == before


def test_quiet_counts_from_last_instance_and_from_takeover() -> None:
    state = fold(ev("a", at=0), ev("b", at=10))
    last = T0.timestamp() + 10
    assert due(state, last + 29, 0.0, S) is None
    assert due(state, last + 30, 0.0, S) == "quiet"
    assert due(state, last + 30, last + 20, S) is None  # partition taken over 20 s after it
    assert due(state, last + 50, last + 20, S) == "quiet"


def test_never_quiet_study_is_forced_at_max_s() -> None:
    state = fold(*(ev(f"i{n}", at=n * 20) for n in range(40)))  # one instance every 20 s
    assert due(state, T0.timestamp() + 599, T0.timestamp(), S) is None
    assert due(state, T0.timestamp() + 600, T0.timestamp(), S) == "forced"
    _, result = close(state, "forced", T0.timestamp() + 600, S)
    assert result.completion == "forced" and not result.complete


def test_required_modality_waits_for_its_series_else_forced() -> None:
    settings = StudySettings(quiet_s=30, max_s=600, routes={
        "scan_cnn": StudyRoute(quiet_s=60, required_modalities=("CT",))})
    state = fold(ev("a", modality="PT"), settings=settings)
    assert due(state, T0.timestamp() + 61, 0.0, settings) is None
    state = fold(ev("a", modality="PT"), ev("b", at=1, series="1.2.9", modality="CT"),
                 settings=settings)
    assert due(state, T0.timestamp() + 60, 0.0, settings) is None  # the route's 60 s quiet
    assert due(state, T0.timestamp() + 61, 0.0, settings) == "quiet"
    lonely = fold(ev("a", modality="PT"), settings=settings)
    _, result = close(lonely, "forced", T0.timestamp() + 600, settings)
    assert result.missing_required == ["CT"] and not result.complete


def test_late_instance_amends_with_next_revision_then_expires() -> None:
    state = fold(ev("a"), ev("b"))
    state, first = close(state, "quiet", T0.timestamp() + 40, S)
    assert due(state, T0.timestamp() + 1000, 0.0, S) is None
    state, _ = apply_instance(state, ev("c", at=100), 3, S)
    assert due(state, T0.timestamp() + 130, 0.0, S) == "quiet"
    state, amended = close(state, "quiet", T0.timestamp() + 130, S)
    assert (first.revision, first.status) == (1, "final")
    assert (amended.revision, amended.status, amended.instances["total"]) == (2, "amended", 3)
    assert not expired(state, T0.timestamp() + 130 + 3599, S)
    assert expired(state, T0.timestamp() + 130 + 3600, S)


def test_majority_patient_is_reported_whatever_the_arrival_order() -> None:
    events = [ev("a", p=0.1, patient="pat-2"), ev("b", p=0.3), ev("c", p=0.2)]
    for order in permutations(events):
        _, result = close(fold(*order), "quiet", T0.timestamp() + 40, S)
        assert (result.patient_id, result.instances["total"]) == ("pat-1", 2)
        assert result.anomalies == {"patient_mismatch": 1} and not result.complete
        assert result.models[0]["probabilities"]["pneumonia"]["max"] == 0.3


def test_future_event_time_is_not_the_study_time() -> None:
    good = T0 - timedelta(minutes=5)
    state = fold(ev("a", event_time=T0 + timedelta(days=3)), ev("b", event_time=good))
    _, result = close(state, "quiet", T0.timestamp() + 40, S)
    assert result.study_time == good and result.anomalies == {"clock_skew": 1}


def test_instances_beyond_capacity_are_counted_without_memory() -> None:
    settings = StudySettings(max_instances=2)
    state = fold(ev("a"), ev("b"), ev("c"), ev("c"), settings=settings)
    assert len(state["sops"]) == 2 and state["anomalies"] == {"over_capacity": 2}


def test_study_event_round_trip() -> None:
    event = ev("a", event_time=T0)
    assert decode_study_event(encode_study_event(event)) == event
    skipped = ev("b", "skipped", reason="no_route", patient=None)
    assert decode_study_event(encode_study_event(skipped)) == skipped
