"""Rate control for replaying producers: at most `rate` messages per second."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps so that the n-th call to `wait()` happens no earlier than n / rate seconds in."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = None if rate is None else 1.0 / rate
        self._start = time.monotonic()
        self._count = 0

    def wait(self) -> None:
        """Block until the next message may be sent."""
        if self._interval is None:
            return
        due = self._start + self._count * self._interval
        self._count += 1
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
