"""Retry forever with exponential backoff + jitter, behind a per-model circuit breaker.

A retryable failure (Triton down, overloaded, timed out) never loses a batch: the same request
is retried until it succeeds, and nothing is committed meanwhile. After `threshold`
consecutive failures the breaker opens (listeners pause the consumer and report not-ready);
while open, readiness is probed every `probe_s` during the backoff and before the next attempt,
and a model seen not ready, then ready, is tried at once (a restarted Triton is used within
`probe_s`, not after the rest of a backoff); the first success closes the breaker again.
Requests in flight per model are capped by an AdaptiveLimit (limit.py), so a slow server gets
fewer concurrent requests instead of a storm of timed-out retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from worker.errors import PoisonMessage, RetryableInference
from worker.inference.limit import AdaptiveLimit
from worker.inference.protocol import InferenceBackend
from worker.metrics import Metrics

log = logging.getLogger(__name__)

Listener = Callable[[str], None]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": a delay in [d/2, d], d = min(max, initial*2^n)."""

    initial_s: float
    max_s: float

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before retry number `attempt` (0-based)."""
        ceiling = min(self.max_s, self.initial_s * (2 ** min(attempt, 32)))
        return ceiling / 2 + rand() * ceiling / 2


class CircuitBreaker:
    """Counts consecutive failures; open at `threshold`, closed by the next success."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.failures = 0
        self.is_open = False

    def record_failure(self) -> bool:
        """Count a failure; True when this one opened the breaker."""
        self.failures += 1
        if not self.is_open and self.failures >= self.threshold:
            self.is_open = True
            return True
        return False

    def record_success(self) -> bool:
        """Reset; True when this success closed an open breaker."""
        self.failures = 0
        was_open, self.is_open = self.is_open, False
        return was_open


class RetryingBackend:
    """Wraps an InferenceBackend: retryable errors are retried forever, poison passes through."""

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        backoff: Backoff,
        threshold: int,
        metrics: Metrics,
        on_open: Listener | None = None,
        on_close: Listener | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_inflight: int = 64,
        probe_s: float = 0.5,
    ) -> None:
        self._backend = backend
        self._backoff = backoff
        self._threshold = threshold
        self._metrics = metrics
        self._on_open = on_open or (lambda model: None)
        self._on_close = on_close or (lambda model: None)
        self._sleep = sleep
        self._probe_s = probe_s
        self.breakers: dict[str, CircuitBreaker] = {}
        self._max_inflight = max_inflight
        self.limits: dict[str, AdaptiveLimit] = {}

    def _breaker(self, model: str) -> CircuitBreaker:
        if model not in self.breakers:
            self.breakers[model] = CircuitBreaker(self._threshold)
        return self.breakers[model]

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Infer, retrying retryable failures until one attempt succeeds."""
        breaker = self._breaker(model)
        limit = self.limits.setdefault(model, AdaptiveLimit(self._max_inflight))
        attempt = 0
        while True:
            if breaker.is_open:
                await self._wait_until_ready(model)
            try:
                async with limit.slot():
                    outputs = await self._backend.infer(model, inputs)
            except PoisonMessage:
                self._metrics.inference_errors.labels(model, "INVALID_ARGUMENT").inc()
                self._closed(model, breaker)  # the service answered: it is up
                raise
            except RetryableInference as exc:
                limit.failed()
                self._metrics.inference_errors.labels(model, exc.code).inc()
                delay = self._backoff.delay(attempt)
                log.warning("inference on %s failed (%s), retry %d in %.2fs: %s",
                            model, exc.code, attempt + 1, delay, exc)
                if breaker.record_failure():
                    log.error("circuit breaker for %s opened after %d consecutive failures",
                              model, breaker.failures)
                    self._metrics.circuit_open.labels(model).set(1)
                    self._on_open(model)
                await self._pause(model, breaker, delay)
                attempt += 1
                continue
            limit.succeeded()
            self._closed(model, breaker)
            return outputs

    async def is_ready(self, model: str) -> bool:
        """Readiness of the wrapped backend."""
        return await self._backend.is_ready(model)

    def _closed(self, model: str, breaker: CircuitBreaker) -> None:
        if breaker.record_success():
            log.warning("circuit breaker for %s closed: inference succeeded again", model)
            self._metrics.circuit_open.labels(model).set(0)
            self._on_close(model)

    async def _pause(self, model: str, breaker: CircuitBreaker, delay: float) -> None:
        """The backoff before the next attempt. While the breaker is open, readiness is probed
        every `probe_s` meanwhile, and the pause ends as soon as a model seen not ready is
        ready again; a model ready throughout (an overloaded server) waits the whole delay."""
        if not breaker.is_open:
            await self._sleep(delay)
            return
        waited, seen_down = 0.0, False
        while waited < delay:
            step = min(self._probe_s, delay - waited)
            await self._sleep(step)
            waited += step
            ready = await self._probe(model)
            if ready and seen_down:
                return
            seen_down = seen_down or not ready

    async def _wait_until_ready(self, model: str) -> None:
        """Probe readiness every `probe_s` until the model reports ready."""
        while not await self._probe(model):
            await self._sleep(self._probe_s)

    async def _probe(self, model: str) -> bool:
        try:
            return bool(await self._backend.is_ready(model))
        except Exception as exc:  # noqa: BLE001 - a failed probe only means "not ready"
            log.debug("readiness probe for %s failed: %r", model, exc)
            return False
