"""An adaptive limit on inference requests in flight per model (AIMD, as in TCP).

More requests in flight than the server can finish within the client timeout cause timeouts,
whose retries add load again: throughput collapses (measured: a model answering in 1.2-2.4 s
against a 2 s timeout served 8 of 1,119 requests with 5 in flight, all of them with 1). So the
limit halves on every retryable failure (timeout, overload, unavailable) and grows by one per
`limit` successes (TCP's congestion avoidance), between 1 and `maximum`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class AdaptiveLimit:
    """Requests in flight for one model, at most `limit` (1 <= limit <= maximum)."""

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("maximum must be >= 1")
        self.maximum = maximum
        self._window = float(maximum)
        self.inflight = 0
        self._changed = asyncio.Condition()

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return int(self._window)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `limit` slots while the request runs."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.inflight < self.limit)
            self.inflight += 1
        try:
            yield
        finally:
            async with self._changed:
                self.inflight -= 1
                self._changed.notify_all()

    def succeeded(self) -> None:
        """Additive increase: +1 after `limit` successes."""
        self._window = min(float(self.maximum), self._window + 1 / self.limit)

    def failed(self) -> None:
        """Multiplicative decrease."""
        self._window = max(1.0, float(self.limit // 2))
