"""Readiness, and the app's wiring: agents, batch caps, web routes (nothing started)."""

from __future__ import annotations

from pathlib import Path

from medstream_tools.soak.fixture_scans import fixture_rules
from tests.support.routing import declared_model
from worker.app import broker_urls, create_app
from worker.inference.protocol import ModelInfo
from worker.metrics import Metrics
from worker.readiness import STARTING, Readiness
from worker.settings import Settings


def test_readiness_follows_its_blockers_and_the_gauge() -> None:
    metrics = Metrics.create()
    ready = Readiness(metrics)
    gauge = lambda: metrics.registry.get_sample_value("medstream_ready")
    assert not ready.ready and ready.blockers == [STARTING] and gauge() == 0
    ready.unblock(STARTING)
    assert ready.ready and gauge() == 1
    ready.block("triton:scan_cnn")
    ready.block("triton:vitals_lstm")
    ready.unblock("triton:scan_cnn")
    assert ready.blockers == ["triton:vitals_lstm"] and gauge() == 0


def test_broker_urls() -> None:
    assert broker_urls("a:1, b:2") == ["kafka://a:1", "kafka://b:2"]


def test_create_app_wires_agents_routes_and_settings(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:9", web_port=6999,
                        state_dir=tmp_path, scan={"max_batch": 100}, app_id="unit-app",
                        routing={"rules": fixture_rules(tmp_path / "rules.yaml")})
    models = {"scan_cnn": declared_model("scan_cnn", max_batch=16),
              "vitals_lstm": ModelInfo("vitals_lstm", "1", 64)}
    app = create_app(settings, models)
    assert sorted(app.agents) == ["medstream.scan", "medstream.vitals"]
    conf = app.conf
    assert (conf.web_bind, conf.web_port, conf.broker_session_timeout) == ("127.0.0.1", 6999, 6.0)
    assert conf.broker_commit_interval == 0.5 and conf.producer_max_request_size >= 10 * 1024 * 1024
    assert str(conf.datadir).startswith(str(tmp_path))
    assert {"/metrics", "/health", "/ready"} <= set(app.web.views)


def test_partitions_assigned_while_a_breaker_is_open_stay_paused(tmp_path: Path) -> None:
    from faust.types import TP

    from worker.app import open_breaker_partitions
    from worker.inference.resilience import CircuitBreaker

    closed, opened = CircuitBreaker(1), CircuitBreaker(1)
    opened.record_failure()
    sources = {"scan_cnn": "scans", "vitals_lstm": "vitals"}
    assigned = {TP("scans", 0), TP("scans", 3), TP("vitals", 1), TP("other", 0)}
    breakers = {"scan_cnn": opened, "vitals_lstm": closed}
    assert open_breaker_partitions(assigned, breakers, sources) == {TP("scans", 0), TP("scans", 3)}
    assert open_breaker_partitions(assigned, {"vitals_lstm": closed}, sources) == set()
