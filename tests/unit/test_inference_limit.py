"""The adaptive in-flight limit: AIMD bounds, waiting for a slot, and its use by RetryingBackend."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from worker.errors import RetryableInference
from worker.inference.limit import AdaptiveLimit
from worker.inference.resilience import Backoff, RetryingBackend
from worker.metrics import Metrics


def test_limit_halves_on_failure_and_grows_by_one_per_limit_successes() -> None:
    limit = AdaptiveLimit(8)
    limit.failed()
    assert limit.limit == 4
    for _ in range(4):
        limit.failed()
    assert limit.limit == 1
    limit.succeeded()  # 1 success at limit 1 -> 2
    assert limit.limit == 2
    limit.succeeded()
    assert limit.limit == 2
    limit.succeeded()  # 2 successes at limit 2 -> 3
    assert limit.limit == 3
    for _ in range(40):
        limit.succeeded()
    assert limit.limit == 8
    with pytest.raises(ValueError):
        AdaptiveLimit(0)


async def test_a_slot_waits_while_the_limit_is_reached() -> None:
    limit = AdaptiveLimit(1)
    order: list[str] = []

    async def hold(name: str, release: asyncio.Event) -> None:
        async with limit.slot():
            order.append(f"{name} in")
            await release.wait()
        order.append(f"{name} out")

    first, second = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(hold("a", first)), asyncio.create_task(hold("b", second))]
    await asyncio.sleep(0.01)
    assert order == ["a in"] and limit.inflight == 1
    first.set()
    second.set()
    await asyncio.gather(*tasks)
    assert order == ["a in", "a out", "b in", "b out"] and limit.inflight == 0


class SlowServer:
    """Times out whenever more than one request is in flight; records what it saw."""

    def __init__(self) -> None:
        self.inflight = 0
        self.failures = 0

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.inflight += 1
        try:
            await asyncio.sleep(0.01)
            if self.inflight > 1:
                self.failures += 1
                raise RetryableInference("DEADLINE_EXCEEDED", "too slow")
            return {"out": np.zeros(1)}
        finally:
            self.inflight -= 1

    async def is_ready(self, model: str) -> bool:
        return True


async def test_timeouts_shrink_the_requests_in_flight_until_they_pass(monkeypatch) -> None:
    server = SlowServer()
    backend = RetryingBackend(server, backoff=Backoff(0.001, 0.002), threshold=1000,
                              metrics=Metrics.create(), max_inflight=8)
    seen: list[int] = []
    original = AdaptiveLimit.failed

    def failed(self: AdaptiveLimit) -> None:
        original(self)
        seen.append(self.limit)

    monkeypatch.setattr(AdaptiveLimit, "failed", failed)
    results = await asyncio.wait_for(
        asyncio.gather(*(backend.infer("m", {}) for _ in range(16))), timeout=10)
    assert len(results) == 16 and server.failures > 0
    assert min(seen) == 1  # the concurrent timeouts drove the limit down to one request
    assert 1 <= backend.limits["m"].limit <= 8
