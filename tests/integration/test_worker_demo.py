"""`medstream demo`'s full path: worker subprocess, sample data in, live table, summary, clean stop."""

from __future__ import annotations

import re

import pytest

from medstream_tools.demo.pipeline import run_pipeline_demo
from tests.support.ports import free_port
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_answers_every_sample_through_the_worker(settings: Settings, capsys) -> None:
    code = run_pipeline_demo(settings.model_copy(update={"web_port": free_port()}))
    out = capsys.readouterr().out
    assert code == 0, out
    answered, total, scans, vitals, skipped, dead = map(int, re.search(
        r"summary: (\d+)/(\d+) inputs answered - (\d+) scan and (\d+) vitals predictions, "
        r"(\d+) scan\(s\) skipped .*, (\d+) dead letter", out).groups())
    assert answered == total == scans + vitals + skipped + dead and dead == 1 and vitals == 9
    assert scans == 2 and skipped >= 6  # a chest radiograph and a brain MR; CT, US, SR, ... skipped
    assert re.search(r"^\s+\d+\s+scan\s+RG1_UNCR\.dcm\s+chest_xray_pneumonia \w+ [01]\.\d{3}", out,
                     re.MULTILINE)
    assert re.search(r"^\s+\d+\s+skip\s+CT_small\.dcm\s+skipped: rule \(ct\)", out, re.MULTILINE)
    assert re.search(r"^\s+\d+\s+skip\s+test-SR\.dcm\s+skipped: non_image", out, re.MULTILINE)
    assert "dead letter: reason json_decode" in out
    assert re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms", out)
    assert "worker stopped (exit 0)" in out
