"""`attach(app, settings, metrics)`: the study and alert agents, tables and timer on the app.

Three agents in the worker's consumer group (docs/studies.md):
- `medstream.studies-feed` re-keys the predictions and dead-letter topics: scan outcomes to
  `study-events` by StudyInstanceUID, vitals risks to `alert-events` by patient pseudonym
  (deliveries awaited before the inputs are acked);
- `medstream.studies` and `medstream.alerts` fold those into faust tables (memory store,
  changelog topics `<app_id>-studies-changelog` / `<app_id>-alerts-changelog`, restored on
  assignment) through the engine in worker/studies/keyed.py;
- a timer appends a tick to each assigned partition of both internal topics every `tick_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from worker.contracts import (
    TICK,
    InputRecord,
    RiskEvent,
    StudyEvent,
    encode_risk_event,
    encode_study_event,
)
from worker.metrics import Metrics
from worker.serving import record_of
from worker.settings import Settings
from worker.studies.feed import Unattributed, from_deadletter, from_prediction
from worker.studies.keyed import KeyedState, Machine, State, run_batches
from worker.studies.machines import AlertMachine, StudyMachine
from worker.studies.metrics import StudyMetrics

MAX_BATCH = 256  # events per state batch: one changelog write per key and batch
WITHIN_S = 0.1


class TableChangelog:
    """Writes a key's state to its table's changelog partition (None: a tombstone)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    async def send(self, *, key: str, value: State | None, partition: int) -> Awaitable[Any]:
        return await self._table.changelog_topic.send(
            key=key, value=value, partition=partition, key_serializer="json",
            value_serializer="raw" if value is None else "json")


class Feed:
    """Re-keys outcomes; acks only after every re-keyed event is acknowledged."""

    def __init__(self, settings: Settings, metrics: StudyMetrics, events: Any, risks: Any) -> None:
        self._predictions = settings.topic_predictions
        self._scans = frozenset(t for t in (settings.scan.topic, settings.scan.stat_topic) if t)
        self._metrics = metrics
        self._events = events
        self._risks = risks

    def route(self, record: InputRecord) -> StudyEvent | RiskEvent | Unattributed:
        """The state event of one outcome record, or why it has none."""
        if record.topic == self._predictions:
            return from_prediction(record)
        return from_deadletter(record, self._scans)

    async def serve(self, events: Sequence[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        futures = []
        for event in events:
            routed = self.route(record_of(event))
            if isinstance(routed, StudyEvent):
                futures.append(await self._events.send(key=routed.study_uid.encode("utf-8"),
                                                       value=encode_study_event(routed)))
            elif isinstance(routed, RiskEvent):
                futures.append(await self._risks.send(key=routed.patient_id.encode("utf-8"),
                                                      value=encode_risk_event(routed)))
            else:
                self._metrics.unattributed.labels(routed.value).inc()
        await asyncio.gather(*futures)
        for event in events:
            await ack(event)


def _state_agent(app: faust.App, settings: Settings, machine: Machine, topic: Any,
                 output: Any, metrics: StudyMetrics) -> KeyedState:
    table = app.Table(machine.name, partitions=settings.topic_partitions,
                      help=f"medstream {machine.name} state (docs/studies.md)")
    engine = KeyedState(machine, table.data, output, TableChangelog(table))
    assigned_at: list[float] = []

    @app.on_partitions_assigned.connect
    async def reassigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        engine.assign(tp.partition for tp in assigned if tp.topic == topic.get_topic_name())
        assigned_at[:] = [time.monotonic()]

    async def restored() -> None:
        if assigned_at:
            metrics.restore_seconds.labels(machine.name).observe(time.monotonic() - assigned_at[0])

    table.on_recover(restored)

    async def agent(stream: Any) -> None:
        await run_batches(stream, engine.serve, max_batch=MAX_BATCH, within=WITHIN_S,
                          name=machine.name)

    agent.__name__ = agent.__qualname__ = f"{machine.name}_agent"
    app.agent(topic, name=f"medstream.{machine.name}")(agent)
    return engine


def attach(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Add study results and alerts to the worker app (nothing when they are disabled)."""
    s = settings.studies
    if not s.enabled:
        return
    own = StudyMetrics.create(metrics.registry)
    events, risks = app.topic(s.events_topic), app.topic(s.risk_topic)
    feed = Feed(settings, own, events, risks)

    async def feed_agent(stream: Any) -> None:
        await run_batches(stream, feed.serve, max_batch=MAX_BATCH, within=WITHIN_S, name="feed")

    app.agent(app.topic(settings.topic_predictions, settings.topic_deadletter),
              name="medstream.studies-feed")(feed_agent)
    _state_agent(app, settings, StudyMachine(s, own), events, app.topic(s.topic), own)
    _state_agent(app, settings, AlertMachine(s, own), risks, app.topic(s.alerts_topic), own)

    @app.timer(interval=s.tick_s)
    async def tick() -> None:
        for topic in (events, risks):
            name = topic.get_topic_name()
            for tp in app.consumer.assignment():
                if tp.topic == name:
                    await topic.send(key=None, value=TICK, partition=tp.partition)
