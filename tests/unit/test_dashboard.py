"""The Grafana dashboard and the Prometheus rules query only series that exist.

Every PromQL expression must parse; every selected series must be exported by the worker's
Metrics registry (suffixes included), by Triton (captured 2.51 exposition, re-checked live by
the integration test), by the producers' registry or be Prometheus' `up`; matchers and `by (...)` labels must exist on
the series selected. Every worker and producer metric must appear on the dashboard.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import yaml

from tests.support.observability_queries import (
    ROOT,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    known_series,
    parse,
    problems,
    producer_catalog,
    rule_queries,
    rules,
    selectors,
    worker_catalog,
)

QUERIES = dashboard_queries() + rule_queries()
DOC = ROOT / "docs/observability.md"


def test_there_are_queries_to_check() -> None:
    assert len(dashboard_queries()) >= 20 and len(rule_queries()) >= 8


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_query_selects_existing_series_and_labels(where: str, expr: str) -> None:
    assert problems(expr, known_series()) == [], where


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("rate(medstream_prediction_total[5m])", "medstream_prediction_total is not exported"),
        ("rate(nv_inference_request_success_total[5m])", "is not exported"),
        ('medstream_ready{model="scan_cnn"}', "has no label(s) ['model']"),
        ("sum by (reason) (rate(medstream_predictions_total[5m]))", "by ['reason']"),
        ("sum by (le) (rate(medstream_batch_size_count[5m]))", "by ['le']"),
        ("vector(1)", "selects no series"),
    ],
)
def test_checker_catches_wrong_queries(expr: str, complaint: str) -> None:
    assert any(complaint in p for p in problems(expr, known_series()))


def test_invalid_promql_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse("sum(rate(medstream_predictions_total[$__rate_interval])")


def test_every_worker_and_producer_metric_is_on_the_dashboard() -> None:
    used = {s.name for _, e in dashboard_queries() for s in selectors(parse(e))}
    names = {**worker_catalog(), **producer_catalog()}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}
    missing = {f for f in families if not any(u.startswith(f) for u in used)}
    assert not missing, f"worker metrics missing from the dashboard: {sorted(missing)}"


def test_triton_queue_and_compute_panel_uses_nv_inference_counters() -> None:
    (panel,) = [p for p in dashboard_panels() if p["title"].startswith("Triton queue vs compute")]
    used = {s.name for t in panel["targets"] for s in selectors(parse(t["expr"]))}
    assert {
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_request_success",
    } <= used


def test_latency_panel_has_p50_p95_p99_from_histogram_buckets() -> None:
    (panel,) = [p for p in dashboard_panels() if p["title"].startswith("End-to-end latency")]
    exprs = [t["expr"] for t in panel["targets"]]
    for q in ("0.5", "0.95", "0.99"):
        assert any(e.startswith(f"histogram_quantile({q},") for e in exprs), q
    assert all("medstream_end_to_end_seconds_bucket" in e for e in exprs)


def test_panels_are_well_formed() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    panels = dashboard_panels()
    ids = Counter(p["id"] for p in panels)
    assert all(n == 1 for n in ids.values()), f"duplicate panel ids: {ids}"
    for p in panels:
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == uid, p["title"]
        assert p["targets"] and all(t["datasource"]["uid"] == uid for t in p["targets"])
        assert p.get("description"), f"{p['title']}: no description for the operator"
    refs = [[t["refId"] for t in p["targets"]] for p in panels if p["type"] != "row"]
    assert all(len(r) == len(set(r)) for r in refs)
    assert dashboard()["uid"] == "medstream"


def test_panels_do_not_overlap_on_the_grid() -> None:
    cells: dict[tuple[int, int], str] = {}
    for p in dashboard_panels():
        pos = p["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/medstream.yml").read_text()
    )["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_required_alerts_exist_with_severity_and_runbook() -> None:
    names = {r["alert"] for r in rules()}
    assert {
        "MedstreamNoPredictions",
        "MedstreamEndToEndLatencyHigh",
        "MedstreamDeadLetterRateHigh",
        "TritonDown",
        "MedstreamWorkerNotReady",
        "MedstreamConsumerLagGrowing",
        "MedstreamCircuitOpen",
    } <= names
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in DOC.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        doc, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert doc == "docs/observability.md" and anchor in anchors, rule["alert"]


def test_scrape_config_has_every_service_and_the_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["rules.yml"]
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    assert {"worker", "dicom-receiver", "hl7-receiver", "producer", "triton"} <= jobs
