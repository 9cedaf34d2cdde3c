"""`medstream top` end to end over HTTP: a local server exposes a real worker registry and the
captured Triton exposition; the command scrapes both (no Kafka or Triton needed)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import generate_latest

from medstream_tools.top.command import frames
from tests.support.observability_queries import TRITON_CAPTURE
from worker.cli import main
from worker.metrics import Metrics


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics.create()
    m.messages_consumed.labels("vitals").inc(12)
    m.predictions.labels("vitals", "vitals_lstm").inc(11)
    m.deadletters.labels("vitals", "json_decode").inc()
    m.batch_size.labels("vitals_lstm").observe(11)
    m.ready.set(1)
    return m


@pytest.fixture
def base_url(metrics: Metrics) -> Iterator[str]:
    bodies = {
        "/metrics": lambda: generate_latest(metrics.registry),
        "/triton": lambda: TRITON_CAPTURE.read_bytes(),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies[self.path]()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_once_prints_one_frame_from_both_endpoints(base_url: str, capsys) -> None:
    rc = main(
        ["top", "--once", "--url", base_url + "/metrics", "--triton-url", base_url + "/triton"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "[READY]" in out and out.splitlines()[0].endswith("[up]")
    vitals = next(line.split() for line in out.splitlines() if line.startswith("vitals "))
    assert vitals[1] == "12" and vitals[3] == "11" and vitals[5] == "1"
    assert "vitals/json_decode=1" in out


def test_once_exits_1_when_the_worker_is_unreachable(base_url: str, capsys) -> None:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/metrics"
        rc = main(["top", "--once", "--url", url, "--triton-url", base_url + "/triton"])
    assert rc == 1 and "[DOWN: " in capsys.readouterr().out


def test_live_frames_show_rates_between_scrapes(base_url: str, metrics: Metrics) -> None:
    live = frames(base_url + "/metrics", base_url + "/triton", interval_s=0.0, timeout_s=2.0)
    first = next(live)
    metrics.predictions.labels("vitals", "vitals_lstm").inc(5)
    second = next(live)
    assert "since start" in first and "rates and percentiles: last" in second
    row = next(line.split() for line in second.splitlines() if line.startswith("vitals "))
    assert row[3] == "16" and row[4] != "-" and float(row[4]) > 0
