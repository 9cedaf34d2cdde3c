"""Periodic probes run by faust timers: dependency readiness, event-loop health, consumer lag.

- ReadinessProbe: Triton server ready and each model ready (the long-lived gRPC client) and the
  broker answering a metadata request (the producer's own client), each with a short timeout,
  set or clear the blockers `triton`, `model:<name>` and `kafka` of the Readiness object.
- LoopMonitor: how late a 1 s timer wakes up is the event loop's lag; /health fails when it
  exceeds MAX_LOOP_LAG_S or the timer stopped ticking (a stalled or crashed app).
- LagReporter: `medstream_consumer_lag` for every assigned partition of the input topics: the
  high watermark of fetch responses (Tansu's end_offsets is wrong) minus the best known position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from prometheus_client import Gauge

from worker.readiness import KAFKA, TRITON, Readiness, model_blocker

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0  # how soon /ready follows a dependency (docs/reliability.md)
PROBE_TIMEOUT_S = 2.0
LOOP_TICK_S = 1.0
MAX_LOOP_LAG_S = 5.0
LAG_INTERVAL_S = 5.0

Check = Callable[[], Awaitable[bool]]
Partition = tuple[str, int]


async def passes(check: Check, timeout_s: float) -> bool:
    """True when `check` answers True within `timeout_s`; an error or a timeout is False."""
    try:
        return bool(await asyncio.wait_for(check(), timeout_s))
    except Exception as exc:  # noqa: BLE001 - a failed probe only means "not ready"
        log.debug("probe failed: %r", exc)
        return False


class ReadinessProbe:
    """One round of dependency checks, mirrored into `readiness` (changes are logged)."""

    def __init__(self, readiness: Readiness, *, triton_ready: Check,
                 model_ready: Callable[[str], Awaitable[bool]], models: Iterable[str],
                 kafka_ready: Check, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._readiness = readiness
        self._triton_ready = triton_ready
        self._model_ready = model_ready
        self._models = list(models)
        self._kafka_ready = kafka_ready
        self._timeout_s = timeout_s

    async def run_once(self) -> None:
        """Check everything concurrently; model results count only when the server is ready."""
        t = self._timeout_s
        kafka, server, *models = await asyncio.gather(
            passes(self._kafka_ready, t), passes(self._triton_ready, t),
            *(passes(lambda m=m: self._model_ready(m), t) for m in self._models))
        self._set(KAFKA, kafka, "Kafka broker does not answer a metadata request")
        self._set(TRITON, server, "Triton server not reachable or not ready")
        if server:
            for model, ready in zip(self._models, models):
                self._set(model_blocker(model), ready, f"Triton reports model {model} not ready")

    def _set(self, blocker: str, ok: bool, problem: str) -> None:
        if self._readiness.update(blocker, blocked=not ok):
            if ok:
                log.info("readiness: %s cleared", blocker)
            else:
                log.warning("readiness: %s (blocker %s)", problem, blocker)


class LoopMonitor:
    """Event-loop lag from the wake-ups of a timer that ticks every `interval_s`."""

    def __init__(self, interval_s: float = LOOP_TICK_S, max_lag_s: float = MAX_LOOP_LAG_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.max_lag_s = max_lag_s
        self._clock = clock
        self._last: float | None = None
        self._lag_s = 0.0

    def tick(self) -> None:
        """Called by the timer: how late this wake-up came is the current lag."""
        now = self._clock()
        if self._last is not None:
            self._lag_s = max(0.0, now - self._last - self.interval_s)
        self._last = now

    @property
    def lag_s(self) -> float:
        """The last wake-up's delay, or how overdue the next one is when that is longer."""
        if self._last is None:  # not ticking yet: faust starts timers after start-up
            return 0.0
        overdue = self._clock() - self._last - self.interval_s
        return max(self._lag_s, overdue, 0.0)

    @property
    def healthy(self) -> bool:
        """The loop keeps up: lag within `max_lag_s`."""
        return self.lag_s <= self.max_lag_s


def start_offset(served: int | None, committed: int | None, position: int | None) -> int | None:
    """Where consumption of a partition stands: the further of what this worker served and
    the group's committed offset, else the consumer's fetch position (nothing known yet)."""
    known = [o for o in (served, committed) if o is not None]
    return max(known) if known else position


def lag(highwater: int | None, start: int | None) -> int | None:
    """Messages between `start` and the high watermark; None when either is unknown."""
    if highwater is None or start is None:
        return None
    return max(0, highwater - start)


class LagReporter:
    """Sets the lag gauge of every assigned input partition; drops partitions no longer assigned.

    `consumer()` is faust's consumer: assignment(), highwater(tp) (from fetch responses), async
    position(tp), and its record of committed offsets (`_committed_offset`, faust-internal).
    """

    def __init__(self, consumer: Callable[[], Any], gauge: Gauge, topics: Iterable[str],
                 served: Callable[[], Mapping[Partition, int]],
                 timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._consumer = consumer
        self._gauge = gauge
        self._topics = frozenset(topics)
        self._served = served
        self._timeout_s = timeout_s
        self._reported: set[Partition] = set()
        self.behind: dict[Partition, int] = {}  # the last lag reported per partition

    async def report(self) -> None:
        """One update of the gauge; never raises (a rebalance may revoke partitions meanwhile)."""
        consumer = self._consumer()
        try:
            assigned = {(tp.topic, tp.partition): tp for tp in consumer.assignment()
                        if tp.topic in self._topics}
        except Exception as exc:  # noqa: BLE001 - consumer not (or no longer) running
            log.debug("no assignment: %r", exc)
            return
        served = self._served()
        committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        starts = {key: start_offset(served.get(key), committed.get(tp), None)
                  for key, tp in assigned.items()}
        unknown = [key for key, start in starts.items() if start is None]
        positions = await asyncio.gather(*(self._ask(consumer.position(assigned[key]))
                                           for key in unknown))
        starts.update(zip(unknown, positions))
        for key, tp in assigned.items():
            behind = lag(await self._ask(_highwater(consumer, tp)), starts[key])
            if behind is not None:
                self._gauge.labels(key[0], str(key[1])).set(behind)
                self._reported.add(key)
                self.behind[key] = behind
        for key in self._reported - assigned.keys():
            self._gauge.remove(key[0], str(key[1]))
            self.behind.pop(key, None)
        self._reported &= assigned.keys()

    async def _ask(self, answer: Awaitable[int | None]) -> int | None:
        """An offset, or None when the consumer cannot tell now (the next round retries)."""
        try:
            return await asyncio.wait_for(answer, self._timeout_s)
        except Exception as exc:  # noqa: BLE001
            log.debug("offset unknown for now: %r", exc)
            return None


async def _highwater(consumer: Any, tp: Any) -> int | None:
    return consumer.highwater(tp)  # raises when tp was revoked meanwhile
