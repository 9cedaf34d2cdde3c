"""Readiness: the set of named blockers that keeps the worker from serving, and their names.

`starting`, `stopping`, `kafka` (broker does not answer), `triton` (server not reachable or not
ready), `model:<name>` (Triton reports the model not ready), `triton:<name>` (that model's
circuit breaker is open). The probes (worker/probes.py) and the app set them; /ready
(worker/web.py) reports them.
"""

from __future__ import annotations

from worker.metrics import Metrics

STARTING = "starting"
STOPPING = "stopping"
KAFKA = "kafka"
TRITON = "triton"


def model_blocker(model: str) -> str:
    """The blocker of a model that Triton reports not ready."""
    return f"model:{model}"


def breaker_blocker(model: str) -> str:
    """The blocker of a model whose circuit breaker is open."""
    return f"triton:{model}"


class Readiness:
    """A set of named blockers; ready when empty. Mirrors itself to the `ready` gauge."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._blockers: set[str] = {STARTING}
        self._publish()

    @property
    def ready(self) -> bool:
        """True when nothing blocks serving."""
        return not self._blockers

    @property
    def blockers(self) -> list[str]:
        """What keeps the worker not-ready, sorted."""
        return sorted(self._blockers)

    def block(self, reason: str) -> None:
        """Add a blocker (e.g. "triton:scan_cnn" while its breaker is open)."""
        self._blockers.add(reason)
        self._publish()

    def unblock(self, reason: str) -> None:
        """Remove a blocker."""
        self._blockers.discard(reason)
        self._publish()

    def update(self, reason: str, *, blocked: bool) -> bool:
        """Block or unblock `reason`; True when that changed it."""
        changed = blocked != (reason in self._blockers)
        if blocked:
            self.block(reason)
        else:
            self.unblock(reason)
        return changed

    def _publish(self) -> None:
        self._metrics.ready.set(1 if self.ready else 0)
