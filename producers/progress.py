"""Progress and end-of-run summary for the batch producers (stderr, throttled)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from producers.metrics import ProducerMetrics
from producers.publisher import Publisher, PublishFailed

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """Thread-safe counts of one producer run (delivery callbacks run on Kafka's thread)."""

    seen: int = 0
    published: int = 0
    failed: int = 0
    claim_checked: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Increment one of seen/published/failed/claim_checked."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def reject(self, reason: str) -> None:
        """Count one rejected input under `reason`."""
        with self._lock:
            self.rejected[reason] += 1

    def summary(self, what: str) -> str:
        """One line: what was published, rejected (by reason) and failed."""
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.rejected.items()))
        rejected = sum(self.rejected.values())
        claim = f" ({self.claim_checked} by claim-check)" if self.claim_checked else ""
        return (
            f"{what}: {self.seen} read, {self.published} published{claim}, {rejected} rejected"
            f"{' (' + reasons + ')' if reasons else ''}, {self.failed} failed"
        )


def delivery_callback(
    tally: Tally, metrics: ProducerMetrics, source: str, topic: str
) -> Callable[[Exception | None], None]:
    """A Publisher `on_done` that counts acknowledged and failed messages."""

    def done(error: Exception | None) -> None:
        if error is None:
            tally.add("published")
            metrics.published.labels(source, topic).inc()
        else:
            tally.add("failed")
            metrics.failed.labels(source).inc()
            log.error("Kafka did not acknowledge a message on %s: %s", topic, error)

    return done


@contextmanager
def publishing(tally: Tally, publisher: Publisher, progress: Progress) -> Iterator[None]:
    """Count a send that cannot even be queued as failed; always flush and print the summary."""
    try:
        yield
    except PublishFailed as exc:
        log.error("%s", exc)
        tally.add("failed")
    finally:
        publisher.flush()
        progress.finish(tally)


class Progress:
    """Running counts on stderr: one rewritten line on a terminal (every 0.5 s), otherwise
    (logs, containers) one line every 10 s."""

    def __init__(self, what: str, stream: TextIO = sys.stderr) -> None:
        self._what, self._stream = what, stream
        self._tty = stream.isatty()
        self._every_s = 0.5 if self._tty else 10.0
        self._start = self._last = time.monotonic()

    def update(self, tally: Tally) -> None:
        """Show the running counts when due."""
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        self._last = now
        rate = tally.published / max(now - self._start, 1e-9)
        line = f"{tally.summary(self._what)} [{rate:.1f} msg/s]"
        self._stream.write(f"\r{line}" if self._tty else f"{line}\n")
        self._stream.flush()

    def report(self, name: str, reason: str, message: str) -> None:
        """Report one skipped input on its own line."""
        if self._tty:
            self._stream.write("\n")
        self._stream.write(f"skipped {name}: {reason}: {message}\n")

    def finish(self, tally: Tally) -> None:
        """Print the final summary line."""
        if self._tty:
            self._stream.write("\r")
        self._stream.write(tally.summary(self._what) + "\n")
        self._stream.flush()
