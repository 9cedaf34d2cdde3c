"""Prometheus' own checker on the shipped config and rules: check config, check rules, test rules.

promtool comes from the Debian package `prometheus`, extracted into .medstream-tools/ by
`make install` (no server installed). It is found there or on PATH; without it these tests fail.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support import observability_queries
from tests.support.observability_queries import ROOT, prometheus_binary

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


def test_a_missing_binary_fails_instead_of_skipping(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(observability_queries, "PROMETHEUS_TOOLS", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="make install"):
        observability_queries.prometheus_binary("promtool")
