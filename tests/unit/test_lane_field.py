"""Every outcome names the lane that served it (docs/lanes.md): the `lane` field of predictions
and skips, the `worker.lane` header of dead letters, and what study results and alerts make of
them; records from before the field still decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from worker.alerts.state import apply_risk, flush
from worker.contracts import (
    LANE_HEADER,
    ROUTINE,
    STAT,
    InputRecord,
    Prediction,
    RiskEvent,
    Skip,
    SkipReason,
    StudyEvent,
    bounded_deadletter,
    decode_alert,
    decode_prediction,
    decode_risk_event,
    decode_skip,
    decode_study_event,
    decode_study_result,
    encode_alert,
    encode_prediction,
    encode_risk_event,
    encode_skip,
    encode_study_event,
    encode_study_result,
    full_deadletter,
)
from worker.errors import DeadLetterReason, PoisonMessage
from worker.identity import EventIdLedger
from worker.outputs import batch_outputs
from worker.settings import StudySettings
from worker.studies.feed import from_deadletter, from_prediction
from worker.studies.state import apply_instance, close

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
IDS = {"study_uid": "1.2", "sop_uid": "sop-1", "series_uid": "1.2.3", "modality": "CR"}
BAD = PoisonMessage(DeadLetterReason.JSON_DECODE, "bad")


def prediction(event_id: str = "sop-1", lane: str | None = None, **extra: str) -> Prediction:
    return Prediction(event_id, "scan", "pseudo-1", "scan_cnn", "1+sha",
                      {"label": "normal", "probabilities": {"normal": 0.9, "pneumonia": 0.1}},
                      T0, T0, 1.0, extra={**IDS, "sop_uid": event_id, **extra}, lane=lane)


def skip(lane: str | None = None) -> Skip:
    return Skip("sop-2", "scan", "pseudo-1", SkipReason.NO_ROUTE, None, {"Modality": "CT"}, T0,
                T0, 1.0, extra={**IDS, "sop_uid": "sop-2"}, lane=lane)


def record(topic: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> InputRecord:
    return InputRecord(topic, 0, 7, b"k", value, T0.timestamp(), headers)


def without(value: bytes, field: str) -> bytes:
    body = json.loads(value)
    del body[field]
    return json.dumps(body).encode()


@pytest.mark.parametrize("lane", [STAT, ROUTINE])
def test_predictions_and_skips_carry_their_lane(lane: str) -> None:
    pred, skipped = prediction(lane=lane), skip(lane)
    assert json.loads(encode_prediction(pred))["lane"] == lane
    assert json.loads(encode_skip(skipped))["lane"] == lane
    assert decode_prediction(encode_prediction(pred)) == pred
    assert decode_skip(encode_skip(skipped)) == skipped
    assert "lane" not in decode_prediction(encode_prediction(pred)).extra


def test_records_without_a_lane_still_decode_as_lane_unknown() -> None:
    """The /v1 schemas stay backward compatible: a record from a worker before the field."""
    old_pred = without(encode_prediction(prediction(lane=STAT)), "lane")
    old_skip = without(encode_skip(skip(STAT)), "lane")
    assert decode_prediction(old_pred).lane is None and decode_skip(old_skip).lane is None
    assert "lane" not in json.loads(encode_prediction(prediction()))  # not recorded: left out


@pytest.mark.parametrize("lane", ["urgent", "", 1, ["stat"]])
def test_an_unknown_lane_value_is_a_schema_error(lane: object) -> None:
    body = {**json.loads(encode_prediction(prediction(lane=STAT))), "lane": lane}
    with pytest.raises(PoisonMessage) as info:
        decode_prediction(json.dumps(body).encode())
    assert info.value.reason == DeadLetterReason.SCHEMA


def test_dead_letters_name_the_lane_beside_the_worker_id_and_cannot_be_spoofed() -> None:
    rec = record("scans.stat", b"{", ((LANE_HEADER, b"routine"),))
    for letter in (full_deadletter(rec, BAD, "w-stat", STAT),
                   bounded_deadletter(rec, BAD, "w-stat", STAT)):
        headers = letter.headers or []
        assert [v for k, v in headers if k == LANE_HEADER] == [b"stat"]
        assert dict(headers)["worker.id"] == b"w-stat"
    assert LANE_HEADER not in dict(full_deadletter(record("scans", b"{"), BAD, "w").headers or [])


def test_batch_outputs_stamp_the_serving_lane_on_every_outcome() -> None:
    outs = batch_outputs([(record("scans.stat", b"a"), prediction(lane=None))],
                         [(record("scans.stat", b"{"), BAD)],
                         [(record("scans.stat", b"b"), skip())], kind="scan", worker_id="w-stat",
                         max_request_bytes=1 << 20, ledger=EventIdLedger(), lane=STAT)
    pred, skipped, dead = outs
    assert decode_prediction(pred.message.value).lane == STAT
    assert decode_skip(skipped.message.value).lane == STAT
    assert (pred.prediction and pred.prediction.lane, skipped.skip and skipped.skip.lane) == (
        STAT, STAT)
    assert dict(dead.message.headers or [])[LANE_HEADER] == b"stat"


def test_study_events_take_the_lane_of_each_outcome() -> None:
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    dead = from_deadletter(record("deadletter", ct, (
        ("source.topic", b"scans.stat"), ("error.type", b"pixel_decode"), (LANE_HEADER, b"stat"))),
        {"scans", "scans.stat"})
    unnamed = from_deadletter(record("deadletter", ct, (
        ("source.topic", b"scans"), (LANE_HEADER, b"urgent"))), {"scans", "scans.stat"})
    assert isinstance(dead, StudyEvent) and isinstance(unnamed, StudyEvent)
    assert (dead.outcome, dead.lane, unnamed.lane) == ("dead_lettered", STAT, None)
    predicted = from_prediction(record("predictions", encode_prediction(prediction(lane=STAT))))
    skipped = from_prediction(record("predictions", encode_skip(skip(ROUTINE))))
    old = from_prediction(record("predictions", encode_prediction(prediction())))
    assert isinstance(predicted, StudyEvent) and isinstance(skipped, StudyEvent)
    assert isinstance(old, StudyEvent)
    assert (predicted.lane, skipped.lane, old.lane) == (STAT, ROUTINE, None)
    assert decode_study_event(encode_study_event(predicted)) == predicted


def test_a_study_result_counts_its_instances_per_lane() -> None:
    settings = StudySettings()
    events = [StudyEvent("1.2", f"sop-{n}", "predicted", T0, "1.2.3", "CR", "pseudo-1",
                         model="scan_cnn", model_version="1", lane=lane)
              for n, lane in enumerate([STAT, ROUTINE, ROUTINE, None])]
    state = None
    for event in events:
        state, _ = apply_instance(state, event, 0, settings)
    assert state is not None
    _, result = close(state, "quiet", T0.timestamp() + 60, settings)
    assert result.lanes == {ROUTINE: 2, STAT: 1}  # the instance whose outcome named none: not counted
    assert result.instances["total"] == 4
    assert decode_study_result(encode_study_result(result)) == result
    old = without(encode_study_result(result), "lanes")
    assert decode_study_result(old).lanes == {}


def test_a_study_state_from_before_lanes_keeps_working() -> None:
    settings = StudySettings()
    first = StudyEvent("1.2", "sop-1", "skipped", T0, "1.2.3", "CT", "pseudo-1", reason="rule")
    state, _ = apply_instance(None, first, 0, settings)
    for group in state["patients"].values():
        del group["lanes"]  # as restored from a changelog written before this change
    state, _ = apply_instance(state, StudyEvent("1.2", "sop-2", "skipped", T0, "1.2.3", "CT",
                                                "pseudo-1", reason="rule", lane=STAT), 0, settings)
    assert close(state, "quiet", T0.timestamp() + 60, settings)[1].lanes == {STAT: 1}


@pytest.mark.parametrize("lanes", [{"urgent": 1}, {"stat": -1}, {"stat": True}, ["stat"]])
def test_study_result_lane_counts_are_validated(lanes: object) -> None:
    settings = StudySettings()
    state, _ = apply_instance(None, StudyEvent("1.2", "s", "skipped", T0, reason="rule"), 0,
                              settings)
    body = {**json.loads(encode_study_result(close(state, "quiet", T0.timestamp(), settings)[1])),
            "lanes": lanes}
    with pytest.raises(PoisonMessage):
        decode_study_result(json.dumps(body).encode())


def test_an_alert_names_the_lane_of_the_window_that_produced_it() -> None:
    settings = StudySettings(alert_threshold=0.7, alert_consecutive=1, reorder_s=0)
    window = RiskEvent("pat-1", "w1", T0, 0.9, "vitals_lstm", "1", {"score": 7}, lane=STAT)
    assert decode_risk_event(encode_risk_event(window)) == window
    state, _ = apply_risk(None, window, 0, T0.timestamp(), settings)
    assert state is not None
    (alert,) = flush(state, T0.timestamp(), settings)
    assert (alert.status, alert.lane) == ("raised", STAT)
    assert decode_alert(encode_alert(alert)) == alert
    assert decode_alert(without(encode_alert(alert), "lane")).lane is None
