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

# STARTING, STOPPING and breaker_blocker: worker/app.py still imports them from here
from worker.readiness import STARTING, STOPPING, Readiness, breaker_blocker  # noqa: F401

if TYPE_CHECKING:
    from worker.probes import LoopMonitor


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
