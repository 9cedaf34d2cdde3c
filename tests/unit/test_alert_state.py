"""Alert state machine (pure): raise after N high windows, hysteresis, repeat limit, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.alerts.state import State, apply_risk, flush, idle
from worker.contracts import (
    Alert,
    RiskEvent,
    decode_alert,
    decode_risk_event,
    encode_alert,
    encode_risk_event,
)
from worker.settings import StudySettings

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
NOW = T0.timestamp() + 3600
S = StudySettings(alert_threshold=0.7, clear_threshold=0.4, alert_consecutive=3,
                  clear_consecutive=2, alert_repeat_s=60, patient_idle_s=600, reorder_s=2)
NEWS2 = {"score": 6, "band": "medium", "subscores": {}, "missing": []}


def window(n: int, risk: float) -> RiskEvent:
    return RiskEvent("pat-1", f"w{n}", T0 + timedelta(seconds=10 * n), risk, "vitals_lstm",
                     "1+sha", NEWS2)


def run(risks: list[float], state: State | None = None,
        order: list[int] | None = None) -> tuple[State | None, list[Alert]]:
    """Windows arrive (in `order`) within one reorder hold, then the timer flushes them."""
    for n in order or range(len(risks)):
        state, anomaly = apply_risk(state, window(n, risks[n]), 1, NOW, S)
        assert anomaly is None
    assert state is not None
    assert flush(state, NOW + 1.9, S) == []  # still held
    return state, flush(state, NOW + 2, S)


def test_raised_after_consecutive_high_windows_only() -> None:
    _, alerts = run([0.9, 0.9, 0.1, 0.9, 0.9])
    assert alerts == []
    _, alerts = run([0.9, 0.9, 0.9])
    (raised,) = alerts
    assert (raised.status, raised.seq, raised.episode, raised.event_id) == ("raised", 0, 1, "w2")
    assert raised.alert_id == "pat-1:" + "2026-03-01T08:00:20.000Z"
    assert decode_alert(encode_alert(raised)) == raised


def test_hysteresis_no_flapping_between_thresholds() -> None:
    # after raising, risks between clear (0.4) and alert (0.7) thresholds keep it raised
    _, alerts = run([0.9, 0.9, 0.9, 0.6, 0.3, 0.5, 0.3, 0.3])
    assert [(a.status, a.seq, a.event_id) for a in alerts] == [("raised", 0, "w2"),
                                                              ("cleared", 1, "w7")]
    assert alerts[1].peak_risk == 0.9 and alerts[1].risk == 0.3


def test_updated_at_most_once_per_repeat_interval() -> None:
    _, alerts = run([0.9] * 16)  # windows every 10 s; repeat 60 s
    assert [(a.status, a.event_id) for a in alerts] == [
        ("raised", "w2"), ("updated", "w8"), ("updated", "w14")]
    assert [a.seq for a in alerts] == [0, 1, 2]


def test_second_episode_gets_its_own_id() -> None:
    _, alerts = run([0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9])
    assert [(a.status, a.episode) for a in alerts] == [("raised", 1), ("cleared", 1),
                                                        ("raised", 2)]
    assert alerts[0].alert_id != alerts[2].alert_id


def test_out_of_order_windows_are_applied_in_time_order() -> None:
    risks = [0.1, 0.9, 0.9, 0.9, 0.1, 0.1]
    _, in_order = run(risks)
    _, shuffled = run(risks, order=[3, 0, 5, 1, 4, 2])
    assert [(a.status, a.event_id) for a in shuffled] == [(a.status, a.event_id) for a in in_order]
    assert [a.status for a in in_order] == ["raised", "cleared"]


def test_redelivered_or_too_late_window_is_stale() -> None:
    state, _ = run([0.9, 0.9])
    for n in (0, 1):  # applied already
        state, anomaly = apply_risk(state, window(n, 0.9), 1, NOW, S)
        assert anomaly == "stale"
    state, _ = apply_risk(state, window(2, 0.9), 1, NOW, S)
    assert apply_risk(state, window(2, 0.9), 1, NOW, S)[1] == "stale"  # buffered already
    assert state is not None and [a.status for a in flush(state, NOW + 2, S)] == ["raised"]


def test_window_from_the_future_is_refused() -> None:
    future = RiskEvent("pat-1", "w", datetime.fromtimestamp(NOW + 3600, UTC), 0.9, "m", "1", NEWS2)
    assert apply_risk(None, future, 1, NOW, S) == (None, "clock_skew")


def test_idle_patient_dropped_open_episode_expires() -> None:
    state, _ = run([0.9, 0.9, 0.9])
    assert state is not None
    assert idle(state, NOW + 599, S) == (False, [])
    drop, alerts = idle(state, NOW + 600, S)
    assert drop and [(a.status, a.seq) for a in alerts] == [("expired", 1)]
    quiet, _ = run([0.1])
    assert quiet is not None and idle(quiet, NOW + 600, S) == (True, [])
    held, _ = apply_risk(None, window(0, 0.1), 1, NOW, S)
    assert held is not None and idle(held, NOW + 600, S) == (False, [])  # not flushed yet


def test_risk_event_round_trip() -> None:
    event = window(3, 0.25)
    assert decode_risk_event(encode_risk_event(event)) == event
