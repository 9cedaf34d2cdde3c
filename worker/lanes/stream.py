"""The lane between a faust stream and the batch loop: per-lane counts, and the STAT duty cycle.

`LaneStream` is the slice of a faust stream that `serve_stream` uses (`noack_take`, `ack`).
Every acked event counts in its lane's throughput and end-to-end latency (Kafka timestamp to
ack, after its output is acknowledged). In the STAT worker it also serves batches one at a time
and, after a batch that kept it busy `t` seconds, starts the next no sooner than `t / weight`
after the last one ended (`duty_wait`): while STAT has work it uses at most weight / (weight+1)
of wall time, so the routine worker keeps at least 1 / (weight+1) of the CPU and of Triton,
whatever STAT sends. A STAT event arriving after a quiet spell is never delayed.
Offsets and acks are untouched: at-least-once holds as in worker/serving.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from worker.lanes import STAT
from worker.metrics import Metrics


def duty_wait(busy_s: float, idle_s: float, weight: int) -> float:
    """Seconds to wait before the next STAT batch, given that the last one kept the lane busy
    `busy_s` and ended `idle_s` ago, so that busy / (busy + gap) <= weight / (weight + 1)."""
    return max(0.0, busy_s / weight - max(0.0, idle_s))


def duty_share(busy_s: float, weight: int) -> float:
    """The STAT lane's share of wall time when back-to-back batches of `busy_s` each are held to
    `duty_wait` (weight / (weight + 1)); what routine keeps is the rest."""
    return busy_s / (busy_s + duty_wait(busy_s, 0.0, weight)) if busy_s > 0 else 0.0


class LaneStream:
    """A faust agent's stream as one lane of one kind; `weight` set: the STAT duty cycle."""

    def __init__(self, stream: Any, kind: str, lane: str, metrics: Metrics, weight: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._stream = stream
        self._records = metrics.lane_records.labels(kind, lane)
        self._end_to_end = metrics.lane_end_to_end_seconds.labels(kind, lane)
        self._throttled = metrics.lane_throttled_seconds.labels(kind)
        self._weight = weight if lane == STAT else None
        self._clock, self._sleep = clock, sleep
        self._unacked = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = self._ended = 0.0

    async def noack_take(self, max_: int, within: float) -> AsyncIterator[Sequence[Any]]:
        """The stream's batches; in the STAT lane, each after the previous one and its gap."""
        async for events in self._stream.noack_take(max_, within=within):
            if self._weight is not None:
                await self._idle.wait()
                now = self._clock()
                wait = duty_wait(self._ended - self._started, now - self._ended, self._weight)
                if wait > 0:
                    self._throttled.inc(wait)
                    await self._sleep(wait)
                self._started = self._clock()
                self._unacked = len(events)
                self._idle.clear()
            yield events

    async def ack(self, event: Any) -> Any:
        """Ack on the stream, then count the event in its lane."""
        result = await self._stream.ack(event)
        self._records.inc()
        timestamp = event.message.timestamp
        if timestamp:
            self._end_to_end.observe(max(0.0, time.time() - float(timestamp)))
        if self._weight is not None:
            self._unacked -= 1
            if self._unacked <= 0:
                self._ended = self._clock()
                self._idle.set()
        return result
