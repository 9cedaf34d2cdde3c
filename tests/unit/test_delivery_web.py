"""/metrics, /health and /ready of the delivery process (a real HTTP server on a free port)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from medstream_delivery.metrics import DeliveryMetrics
from medstream_delivery.web import STARTING, Readiness, serve, target_blocker


@pytest.fixture
def endpoints() -> Iterator[tuple[str, Readiness]]:
    metrics = DeliveryMetrics.create("sr")
    readiness = Readiness(metrics, stall_s=0.0)
    server = serve("127.0.0.1", 0, metrics, readiness)
    yield f"http://127.0.0.1:{server.server_address[1]}", readiness
    server.shutdown()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_ready_names_the_blockers(endpoints: tuple[str, Readiness]) -> None:
    base, readiness = endpoints
    assert _get(base + "/ready") == (503, json.dumps({"ready": False,
                                                      "blockers": [STARTING]}).encode())
    readiness.clear(STARTING)
    readiness.block(target_blocker("sr"))
    assert json.loads(_get(base + "/ready")[1])["blockers"] == ["target:sr"]
    readiness.clear(target_blocker("sr"))
    assert _get(base + "/ready")[0] == 200
    assert b"medstream_delivery_ready 1.0" in _get(base + "/metrics")[1]


def test_metrics_start_at_zero_for_every_reason(endpoints: tuple[str, Readiness]) -> None:
    text = _get(endpoints[0] + "/metrics")[1].decode()
    for reason in ("target_rejected", "undecodable", "unbuildable", "unmapped_identity"):
        assert f'medstream_delivery_rejected_total{{reason="{reason}",target="sr"}} 0.0' in text


def test_health_turns_503_when_the_loop_stops_polling(endpoints: tuple[str, Readiness]) -> None:
    base = endpoints[0]
    status, body = _get(base + "/health")  # stall_s=0: any age counts as stalled
    assert status == 503 and json.loads(body)["status"] == "delivery loop stalled"
    assert _get(base + "/nowhere")[0] == 404


def test_a_beating_loop_is_healthy() -> None:
    readiness = Readiness(DeliveryMetrics.create("fhir"), stall_s=3600.0)
    readiness.beat()
    assert readiness.stalled_s() is None
