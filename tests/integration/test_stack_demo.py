"""`medstream demo`'s round trip and inference on the real stack (on private topics)."""

from __future__ import annotations

import re

import pytest

from medstream_tools.demo.command import run_demo
from medstream_tools.demo.samples import SAMPLE_SCANS
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_routes_each_sample_and_prints_its_prediction_or_skip(settings: Settings, topic_factory, capsys) -> None:
    private = settings.model_copy(update={
        "scan": settings.scan.model_copy(
            update={"topic": topic_factory("demo-scans", partitions=2)}),
        "vitals": settings.vitals.model_copy(
            update={"topic": topic_factory("demo-vitals", partitions=2)}),
    })
    run_demo(private)
    out = capsys.readouterr().out
    lines = {name: next(line for line in out.splitlines() if line.strip().startswith(name))
             for name in SAMPLE_SCANS}
    assert "CT_small.dcm skipped: rule (rule 'ct')" in lines["CT_small.dcm"]
    assert "MR_small.dcm skipped: rule (rule 'mr-other-body-part')" in lines["MR_small.dcm"]
    assert "-> brain_mri_tumour" in lines["emri_small.dcm"]
    assert "-> chest_xray_pneumonia" in lines["RG1_UNCR.dcm"]
    for name in ("emri_small.dcm", "RG1_UNCR.dcm"):
        scores = [float(v) for v in re.findall(r"=(\d\.\d{3})", lines[name])]
        assert len(scores) >= 2 and abs(sum(scores) - 1.0) < 0.01
    assert out.count("kafka: demo-") == len(SAMPLE_SCANS) + 1
    risk = float(re.search(r"risk=(\d\.\d{3})", out).group(1))
    assert 0.0 <= risk <= 1.0
