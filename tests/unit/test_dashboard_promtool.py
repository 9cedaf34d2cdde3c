"""Prometheus' own checker on the shipped config and rules: check config, check rules, test rules.

promtool comes from the Debian package `prometheus` (`apt-get download prometheus && dpkg -x
prometheus_*.deb DIR` puts it at DIR/usr/bin/promtool without installing a server; .ci/run does
that). It is found on PATH or at $MEDSTREAM_PROMTOOL. Without it these tests are skipped, unless
MEDSTREAM_REQUIRE_PROMTOOL=1 (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import subprocess

import pytest
from observability_queries import ROOT, prometheus_binary

PROM_DIR = ROOT / "deploy/prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus_binary("promtool")


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_config(promtool: str) -> None:
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_check_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
