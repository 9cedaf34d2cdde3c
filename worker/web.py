"""The worker's HTTP endpoints on faust's web server: /metrics, /health, /ready.

/health is liveness: 200 while the event loop keeps up (its lag, measured by a timer, within
bounds), else 503. /ready is 200 only while nothing blocks serving, else 503 naming the
blockers: `starting`, `stopping`, `kafka` (broker does not answer), `triton` (server not
reachable or not ready), `model:<name>` (Triton reports the model not ready), `triton:<name>`
(that model's circuit breaker is open). Bind address and port come from settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.metrics import Metrics

if TYPE_CHECKING:
    from worker.probes import LoopMonitor

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


def register_views(app: faust.App, metrics: Metrics, readiness: Readiness,
                   loop: LoopMonitor) -> None:
    """Add /metrics, /health and /ready to the app's web server."""

    @app.page("/metrics")
    async def prometheus(view: Any, request: Any) -> Any:
        return view.bytes(generate_latest(metrics.registry),
                          headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health(view: Any, request: Any) -> Any:
        body = {"loop_lag_s": round(loop.lag_s, 3)}
        if loop.healthy:
            return view.json({"status": "ok", **body})
        return view.json({"status": "event loop lagging", **body}, status=503)

    @app.page("/ready")
    async def ready(view: Any, request: Any) -> Any:
        if readiness.ready:
            return view.json({"ready": True})
        return view.json({"ready": False, "blockers": readiness.blockers}, status=503)
