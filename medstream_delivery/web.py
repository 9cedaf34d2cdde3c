"""/metrics, /health and /ready of `medstream deliver` (a small threaded HTTP server).

/ready answers 503 with the blockers: `starting` (no group assignment yet) and
`target:<name>` while that target is unavailable and its report is being retried.
/health answers 503 when the delivery loop has not polled Kafka for `stall_s` (it polls at
least every second, also while retrying; one target call is bounded by its timeout).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from medstream_delivery.metrics import DeliveryMetrics

STARTING = "starting"


def target_blocker(target: str) -> str:
    """The /ready blocker of an unavailable target."""
    return f"target:{target}"


class Readiness:
    """A thread-safe set of blockers mirrored to the `ready` gauge."""

    def __init__(self, metrics: DeliveryMetrics, stall_s: float = 120.0) -> None:
        self._lock = threading.Lock()
        self._blockers = {STARTING}
        self._metrics = metrics
        self._stall_s = stall_s
        self._beat = time.monotonic()
        metrics.ready.set(0)

    def beat(self) -> None:
        """The loop is alive (called at every poll)."""
        self._beat = time.monotonic()

    def stalled_s(self) -> float | None:
        """Seconds since the last poll when that is longer than `stall_s`, else None."""
        age = time.monotonic() - self._beat
        return age if age > self._stall_s else None

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
                stalled = readiness.stalled_s()
                if stalled is None:
                    self._json(200, {"status": "ok"})
                else:
                    self._json(503, {"status": "delivery loop stalled",
                                     "since_s": round(stalled, 1)})
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
