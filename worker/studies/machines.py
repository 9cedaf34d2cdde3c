"""The two keyed-state machines the worker runs: study results and vitals alerts.

Each adapts a pure state module (worker/studies/state.py, worker/alerts/state.py) to the
engine in worker/studies/keyed.py: decode the internal event, fold it, encode the outputs,
count what happened. State events that do not decode (a bug or a foreign producer on an
internal topic) are dropped and counted as `malformed`, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.alerts import state as alert_state
from worker.contracts import (
    Alert,
    decode_risk_event,
    decode_study_event,
    encode_alert,
    encode_study_result,
)
from worker.errors import PoisonMessage
from worker.settings import StudySettings
from worker.studies import state as study_state
from worker.studies.keyed import State, Step
from worker.studies.metrics import StudyMetrics


class StudyMachine:
    """Instance outcomes -> per-study state -> `medstream.study/v1` revisions."""

    name = "studies"

    def __init__(self, settings: StudySettings, metrics: StudyMetrics) -> None:
        self._settings = settings
        self._metrics = metrics

    def apply(self, state: State | None, value: bytes, partition: int, now: float) -> Step:
        """Fold one `medstream.study-event/v1`."""
        try:
            event = decode_study_event(value)
        except PoisonMessage:
            self._metrics.anomalies.labels(self.name, "malformed").inc()
            raise
        state, anomalies = study_state.apply_instance(state, event, partition, self._settings)
        duplicate = anomalies == ["duplicate"]
        self._metrics.study_instances.labels("duplicate" if duplicate else event.outcome).inc()
        for anomaly in anomalies:
            if not duplicate:
                self._metrics.anomalies.labels(self.name, anomaly).inc()
        return Step(state, changed=not duplicate)

    def tick(self, state: State, now: float, active_since: float) -> Step:
        """Answer a due study; drop a closed one after `retain_s`."""
        completion = study_state.due(state, now, active_since, self._settings)
        if completion is not None:
            state, result = study_state.close(state, completion, now, self._settings)
            self._metrics.study_results.labels(result.status, result.completion).inc()
            self._metrics.study_completion_seconds.observe(result.latency_s)
            return Step(state, changed=True,
                        outputs=[(result.study_uid.encode("utf-8"), encode_study_result(result))])
        if study_state.expired(state, now, self._settings):
            return Step(None, changed=True)
        return Step(state, changed=False)

    def observe(self, states: Iterable[State]) -> None:
        """Open studies and studies held (open or kept for amendments)."""
        held = list(states)
        self._metrics.open_studies.set(sum(1 for s in held if s["pending"]))
        self._metrics.state_entries.labels(self.name).set(len(held))


class AlertMachine:
    """Window risks -> per-patient alert state -> `medstream.alert/v1` records."""

    name = "alerts"

    def __init__(self, settings: StudySettings, metrics: StudyMetrics) -> None:
        self._settings = settings
        self._metrics = metrics

    def _emit(self, alerts: list[Alert]) -> list[tuple[bytes, bytes]]:
        for alert in alerts:
            self._metrics.alerts.labels(alert.status).inc()
        return [(a.alert_id.encode("utf-8"), encode_alert(a)) for a in alerts]

    def apply(self, state: State | None, value: bytes, partition: int, now: float) -> Step:
        """Buffer one `medstream.risk-event/v1` (applied in time order on the timer)."""
        try:
            event = decode_risk_event(value)
        except PoisonMessage:
            self._metrics.anomalies.labels(self.name, "malformed").inc()
            raise
        new, anomaly = alert_state.apply_risk(state, event, partition, now, self._settings)
        if anomaly is not None:
            self._metrics.anomalies.labels(self.name, anomaly).inc()
            return Step(state, changed=False)
        return Step(new, changed=True)

    def tick(self, state: State, now: float, active_since: float) -> Step:
        """Apply the windows held long enough; drop an idle patient (an open episode ends as
        `expired`)."""
        held = len(state["buffer"])
        alerts = alert_state.flush(state, now, self._settings)
        drop, expired = alert_state.idle(state, now, self._settings)
        return Step(None if drop else state, changed=drop or len(state["buffer"]) != held,
                    outputs=self._emit(alerts + expired))

    def observe(self, states: Iterable[State]) -> None:
        """Patients held."""
        self._metrics.state_entries.labels(self.name).set(sum(1 for _ in states))
