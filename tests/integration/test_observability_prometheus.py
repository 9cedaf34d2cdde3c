"""A real Prometheus server scrapes a real worker and Triton during an end-to-end run, with the
shipped scrape config (targets swapped for the local ports) and rules: every dashboard query
must evaluate without error and show data, and every rule must evaluate without error.

This is the closest check to "open the dashboard in Grafana" without Docker: Grafana only sends
these queries to Prometheus' query_range API. The server binary comes with promtool (Debian
package `prometheus`); see tests/unit/test_dashboard_promtool.py for how it is found.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from medstream_tools.ports import free_port
from medstream_tools.soak.waiting import wait_for
from medstream_tools.soak.worker import http_get as get
from tests.support.observability import (
    N_SCANS,
    N_VITALS,
    WorkerRun,
    predictions_by_kind,
    running_worker,
    scan_messages,
    vitals_messages,
)
from tests.support.observability_queries import (
    RULES,
    TRITON_GPU_SERIES,
    dashboard_queries,
    parse,
    prometheus_binary,
    selectors,
)
from worker.settings import Settings

pytestmark = pytest.mark.integration

SCRAPE_S = 1
WAVES, WAVE_VITALS, WAVE_SCANS = 6, 20, 4
RATE_INTERVAL = "10s"  # what Grafana's $__rate_interval becomes at a 1 s scrape interval
# Series that a healthy worker-only run on CPU does not produce: producers are not running, no
# inference failed, and no GPU. (The breaker gauge is pre-initialised to 0, so it has data.)
ABSENT_HERE = TRITON_GPU_SERIES.keys() | frozenset(
    {
        "medstream_inference_errors_total",
        "medstream_producer_received_total",
        "medstream_producer_published_total",
        "medstream_producer_claim_checks_total",
        "medstream_producer_rejected_total",
        "medstream_producer_publish_failures_total",
        "medstream_producer_unknown_priority_total",
        "medstream_receiver_responses_total",
    }
)


def prometheus_config(worker_port: int, triton: str) -> dict:
    """The shipped prometheus.yml with a 1 s interval, local targets and absolute rule paths."""
    shipped = yaml.safe_load((RULES.parent / "prometheus.yml").read_text())
    targets = {"worker": f"127.0.0.1:{worker_port}", "triton": triton}
    jobs = [
        {"job_name": job["job_name"], "static_configs": [{"targets": [targets[job["job_name"]]]}]}
        for job in shipped["scrape_configs"]
        if job["job_name"] in targets
    ]
    assert len(jobs) == len(targets), "the shipped config lost the worker or triton job"
    return {
        "global": {
            **shipped["global"],
            "scrape_interval": f"{SCRAPE_S}s",
            "scrape_timeout": f"{SCRAPE_S}s",
            "evaluation_interval": f"{SCRAPE_S}s",
        },
        "rule_files": [str(RULES.parent / f) for f in shipped["rule_files"]],
        "scrape_configs": jobs,
    }


class Prometheus:
    """A Prometheus server subprocess and its HTTP API."""

    def __init__(self, binary: str, config: dict, workdir: Path) -> None:
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: object) -> dict:
        status, body = get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", f"{path} {params}: {answer}"
        return answer["data"]

    def scalar(self, query: str) -> float | None:
        """The value of a one-series instant query (None when empty)."""
        result = self.api("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"prometheus exited: {self.log.read_text()[-2000:]}")
        try:
            return get(self.url + "/-/ready")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def observed(settings: Settings, tmp_path_factory) -> Iterator[tuple[Prometheus, WorkerRun, float]]:
    """Prometheus started first, then the worker and its backlog, then steady traffic; yields
    once Prometheus has scraped every prediction.

    The steady part matters: a labelled series appears on /metrics at its first increment, so a
    backlog served within one scrape interval shows up already at its final value and rate()
    sees no increase. Live traffic after the first scrapes is what the dashboard displays."""
    binary = prometheus_binary("prometheus")
    port, work = free_port(), tmp_path_factory.mktemp("prometheus")
    prom = Prometheus(binary, prometheus_config(port, settings.triton_metrics_url), work)
    try:
        wait_for("prometheus /-/ready", prom.ready, 60)
        started = time.time()
        with running_worker(settings, tmp_path_factory.mktemp("worker"), web_port=port) as run:
            predictions_by_kind(run, N_VITALS + N_SCANS)
            total = "sum(medstream_predictions_total)"
            wait_for("prometheus to scrape the backlog's predictions", lambda: prom.scalar(total))
            for wave in range(WAVES):
                run.send("vitals", vitals_messages(WAVE_VITALS, seed=1000 * (wave + 1)))
                run.send("scan", scan_messages(WAVE_SCANS))
                time.sleep(SCRAPE_S)
            expected = N_VITALS + N_SCANS + WAVES * (WAVE_VITALS + WAVE_SCANS)
            wait_for(
                "prometheus to scrape every prediction", lambda: prom.scalar(total) == expected, 90
            )
            time.sleep(3 * SCRAPE_S)  # a few evaluations of the rules on the final figures
            yield prom, run, started
    finally:
        prom.stop()


def finite_values(result: list[dict]) -> int:
    return sum(1 for series in result for _, v in series["values"] if math.isfinite(float(v)))


PANEL_QUERIES = dashboard_queries()


@pytest.mark.parametrize(("panel", "expr"), PANEL_QUERIES, ids=[p for p, _ in PANEL_QUERIES])
def test_dashboard_query_evaluates_with_data(observed, panel: str, expr: str) -> None:
    prom, _, started = observed
    query = expr.replace("$__rate_interval", RATE_INTERVAL)
    data = prom.api("query_range", query=query, start=started, end=time.time(), step=SCRAPE_S)
    names = {s.name for s in selectors(parse(expr))}
    if names & ABSENT_HERE:
        return  # evaluated without error (api() checks that); no data expected in this run
    assert finite_values(data["result"]) > 0, f"{panel}: no data for {query}"


def test_every_rule_evaluates_and_alerts_match_the_run(observed) -> None:
    prom, _, _ = observed
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    shipped = yaml.safe_load(RULES.read_text())["groups"]
    assert {r["name"] for r in rules} == {r["alert"] for g in shipped for r in g["rules"]}
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    states = {r["name"]: r["state"] for r in rules}
    print("alert states after the run:", json.dumps(states, indent=1))
    for quiet in (
        "MedstreamNoPredictions",
        "TritonDown",
        "MedstreamWorkerDown",
        "MedstreamWorkerMissing",
        "MedstreamWorkerNotReady",
        "MedstreamCircuitOpen",
    ):
        assert states[quiet] == "inactive", quiet
    # The sample scans carry an acquisition date years back: their end-to-end time lands beyond
    # the last bucket, so the scan latency alert is pending; fresh vitals windows are not late.
    late = {
        a["labels"]["kind"]
        for a in prom.api("alerts")["alerts"]
        if a["labels"]["alertname"] == "MedstreamEndToEndLatencyHigh"
    }
    assert late == {"scan"}
