"""Pure per-patient alert state machine with hysteresis (the faust table's value per patient).

Quiet -> `raised` after `alert_consecutive` windows in a row at risk >= `alert_threshold`;
while raised, `updated` at most once per `alert_repeat_s` of window time; `cleared` after
`clear_consecutive` windows in a row below `clear_threshold` (< alert_threshold: a risk
hovering at the threshold neither flaps nor repeats).

Windows of one patient reach the worker out of order (predictions are keyed by event id, so
one patient's windows travel on several partitions): each window is held `reorder_s` in the
state's buffer and windows are applied in event-time order (`flush`, on the timer). Every
decision then depends only on the sequence of windows, so re-delivered windows replay to the
same records. A window not newer than the last one applied, or already buffered, is dropped
(`stale`: a re-delivery, or later than `reorder_s`). The worker clock is used only for the
hold, to drop a patient idle for `patient_idle_s` (an open episode then ends as `expired`: the
alert's state is unknown, not cleared) and to refuse windows from more than `clock_skew_s` in
the future. The functions update the state dict they are given and return it. Memory per
patient: ~1 KB (~530 bytes as JSON) plus ~300 bytes per buffered window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.contracts import Alert, RiskEvent
from worker.settings import StudySettings

State = dict[str, Any]


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def new_state(event: RiskEvent, partition: int) -> State:
    """A patient with no alert yet."""
    return {"patient_id": event.patient_id, "partition": partition, "episode": 0,
            "active": False, "high": 0, "low": 0, "last_event_time": None, "last_seen": None,
            "raised_at": None, "seq": 0, "last_emit_time": None, "peak": 0.0, "last": None,
            "buffer": []}


def _alert(state: State, status: str, now: float) -> Alert:
    last = state["last"]
    return Alert(
        patient_id=state["patient_id"], episode=state["episode"],
        raised_at=_when(state["raised_at"]), seq=state["seq"], status=status,  # type: ignore[arg-type]
        risk=last["risk"], peak_risk=state["peak"], news2=last["news2"],
        event_id=last["event_id"], event_time=_when(last["event_time"]), model=last["model"],
        model_version=last["model_version"], produced_at=_when(now), lane=last.get("lane"))


def apply_risk(state: State | None, event: RiskEvent, partition: int, now: float,
               settings: StudySettings) -> tuple[State | None, str | None]:
    """Buffer one window: (state, anomaly or None). A window refused as `clock_skew` leaves a
    new patient without state (None)."""
    moment = event.event_time.timestamp()
    if moment > now + settings.clock_skew_s:
        return state, "clock_skew"
    state = state if state is not None else new_state(event, partition)
    if ((state["last_event_time"] is not None and moment <= state["last_event_time"])
            or any(w["event_time"] == moment for w in state["buffer"])):
        return state, "stale"
    state["last_seen"] = now
    state["buffer"].append({"risk": event.risk, "news2": event.news2, "event_id": event.event_id,
                            "event_time": moment, "model": event.model,
                            "model_version": event.model_version, "lane": event.lane,
                            "arrived": now})
    return state, None


def flush(state: State, now: float, settings: StudySettings) -> list[Alert]:
    """Apply, in event-time order, the buffered windows held for `reorder_s`; the alerts."""
    state["buffer"].sort(key=lambda w: w["event_time"])
    alerts: list[Alert] = []
    while state["buffer"] and state["buffer"][0]["arrived"] + settings.reorder_s <= now:
        alerts += _step(state, state["buffer"].pop(0), now, settings)
    return alerts


def _step(state: State, window: dict[str, Any], now: float,
          settings: StudySettings) -> list[Alert]:
    moment, risk = window["event_time"], window["risk"]
    state["last_event_time"] = moment
    state["last"] = {k: v for k, v in window.items() if k != "arrived"}
    if not state["active"]:
        return _maybe_raise(state, risk, moment, now, settings)
    state["peak"] = max(state["peak"], risk)
    state["low"] = state["low"] + 1 if risk < settings.clear_threshold else 0
    if state["low"] >= settings.clear_consecutive:
        state.update(active=False, high=0, low=0, seq=state["seq"] + 1)
        return [_alert(state, "cleared", now)]
    if moment >= state["last_emit_time"] + settings.alert_repeat_s:
        state.update(seq=state["seq"] + 1, last_emit_time=moment)
        return [_alert(state, "updated", now)]
    return []


def _maybe_raise(state: State, risk: float, moment: float, now: float,
                 settings: StudySettings) -> list[Alert]:
    state["high"] = state["high"] + 1 if risk >= settings.alert_threshold else 0
    if state["high"] < settings.alert_consecutive:
        return []
    state.update(active=True, episode=state["episode"] + 1, raised_at=moment, seq=0,
                 last_emit_time=moment, peak=risk, low=0)
    return [_alert(state, "raised", now)]


def idle(state: State, now: float, settings: StudySettings) -> tuple[bool, list[Alert]]:
    """(drop the state?, alerts): a patient without a window for `patient_idle_s` (and none
    buffered) is dropped; an open episode then ends as `expired`."""
    if state["buffer"] or now < state["last_seen"] + settings.patient_idle_s:
        return False, []
    if not state["active"]:
        return True, []
    state.update(active=False, seq=state["seq"] + 1)
    return True, [_alert(state, "expired", now)]
