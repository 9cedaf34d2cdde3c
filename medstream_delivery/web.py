"""/metrics, /health and /ready of `medstream deliver` (a small threaded HTTP server).

/ready answers 503 with the blockers: `starting` (no group assignment yet) and
`target:<name>` while that target is unavailable and its report is being retried.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from medstream_delivery.metrics import DeliveryMetrics

STARTING = "starting"


def target_blocker(target: str) -> str:
    """The /ready blocker of an unavailable target."""
    return f"target:{target}"


class Readiness:
    """A thread-safe set of blockers mirrored to the `ready` gauge."""

    def __init__(self, metrics: DeliveryMetrics) -> None:
        self._lock = threading.Lock()
        self._blockers = {STARTING}
        self._metrics = metrics
        metrics.ready.set(0)

    def block(self, name: str) -> None:
        with self._lock:
            self._blockers.add(name)
            self._metrics.ready.set(0)

    def clear(self, name: str) -> None:
        with self._lock:
            self._blockers.discard(name)
            self._metrics.ready.set(0 if self._blockers else 1)

    def blockers(self) -> list[str]:
        with self._lock:
            return sorted(self._blockers)


def serve(host: str, port: int, metrics: DeliveryMetrics,
          readiness: Readiness) -> ThreadingHTTPServer:
    """Start the endpoints in a daemon thread; `shutdown()` the returned server to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/health":
                self._json(200, {"status": "ok"})
            elif self.path == "/ready":
                blockers = readiness.blockers()
                self._json(503 if blockers else 200, {"ready": not blockers,
                                                      "blockers": blockers})
            else:
                self._json(404, {"error": "not found"})

        def _json(self, status: int, body: dict) -> None:
            self._answer(status, json.dumps(body).encode(), "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """No access log (one line per scrape)."""

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="delivery-web", daemon=True).start()
    return server
