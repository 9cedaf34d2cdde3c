"""`medstream demo`'s round trip and inference on the real stack (on private topics)."""

from __future__ import annotations

import re

import pytest

from medstream_tools.demo.command import run_demo
from medstream_tools.demo.samples import SAMPLE_SCANS
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_prints_a_prediction_per_sample(settings: Settings, topic_factory, capsys) -> None:
    private = settings.model_copy(update={
        "scan": settings.scan.model_copy(
            update={"topic": topic_factory("demo-scans", partitions=2)}),
        "vitals": settings.vitals.model_copy(
            update={"topic": topic_factory("demo-vitals", partitions=2)}),
    })
    run_demo(private)
    out = capsys.readouterr().out
    for name in SAMPLE_SCANS:
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        scores = [float(v) for v in re.findall(r"=(\d\.\d{3})", line)]
        assert len(scores) >= 2 and abs(sum(scores) - 1.0) < 0.01
    assert out.count("kafka: demo-") == len(SAMPLE_SCANS) + 1
    risk = float(re.search(r"risk=(\d\.\d{3})", out).group(1))
    assert 0.0 <= risk <= 1.0
