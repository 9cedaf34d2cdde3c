"""The worker's HTTP endpoints on faust's web server: /metrics, /health, /ready.

/health is liveness (the process serves HTTP); /ready is 200 only while nothing blocks
serving (start-up finished, no circuit breaker open), else 503 with the blockers.
Bind address and port come from settings (127.0.0.1 by default).
"""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.metrics import Metrics

STARTING = "starting"


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

    def _publish(self) -> None:
        self._metrics.ready.set(1 if self.ready else 0)


def register_views(app: faust.App, metrics: Metrics, readiness: Readiness) -> None:
    """Add /metrics, /health and /ready to the app's web server."""

    @app.page("/metrics")
    async def prometheus(view: Any, request: Any) -> Any:
        return view.bytes(generate_latest(metrics.registry),
                          headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health(view: Any, request: Any) -> Any:
        return view.json({"status": "ok"})

    @app.page("/ready")
    async def ready(view: Any, request: Any) -> Any:
        if readiness.ready:
            return view.json({"ready": True})
        return view.json({"ready": False, "blockers": readiness.blockers}, status=503)
