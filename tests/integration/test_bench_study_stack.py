"""`medstream bench --study` at a tiny size against the real stack: the measurement runs end to
end (shipped rules, brain MR slices of the bundled images -> brain_mri_tumour, studies enabled)
and its study ends in exactly one final result counting every instance. No timing assertion."""

from __future__ import annotations

import asyncio

import pytest

from medstream_tools.bench import study, studylatency
from medstream_tools.bench.stack import Stack
from medstream_tools.localstack import triton
from worker.settings import Settings

pytestmark = pytest.mark.integration

INSTANCES = 5


def test_the_study_measurement_sees_one_final_result_of_every_instance(settings: Settings) -> None:
    stack = Stack(settings, triton.service(settings.state_dir).pid())
    result = asyncio.run(study.measure(stack, INSTANCES, 1, quiet_s=1.0, tick_s=0.5))
    (run,) = result["runs"]
    assert run["results"] == 1 and run["status"] == "final"
    assert run["instances"] == {"total": INSTANCES, "predicted": INSTANCES, "skipped": 0,
                                "dead_lettered": 0}
    assert run["models"] == [[study.MODEL, INSTANCES]]
    assert set(studylatency.FIGURES) <= set(run) and set(result["median"]) == set(studylatency.FIGURES)
