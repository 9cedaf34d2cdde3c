"""The benchmark's realistic-size workloads: DICOMs of the bundled images, routed by the shipped
rules to the imported models; the DenseNet stand-in routed by fixture rules it declares."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom

from medstream_tools.bench import bundled
from medstream_tools.bench.workloads import SHIPPED_RULES, XCEPTION_MODELS, workloads
from worker.inference.protocol import ModelInfo
from worker.routing import Router, RouteTo, check_rules, load_rules
from worker.routing.attributes import dataset_lookup

CATALOGUE = workloads("scan_cnn", "vitals_lstm")


def _header(value: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(value), stop_before_pixels=True)


def test_bundled_scans_are_routed_by_the_shipped_rules_to_their_model() -> None:
    router = Router(load_rules(SHIPPED_RULES))
    for model, name in XCEPTION_MODELS.items():
        workload = CATALOGUE[name]
        assert workload.model == model and workload.routing_rules(Path("unused")) == SHIPPED_RULES
        messages = workload.messages(3, "unused")
        assert len({m.event_id for m in messages}) == 3 and len({m.key for m in messages}) == 3
        for message in messages:
            decision = router.decide(dataset_lookup(_header(message.value)))
            assert isinstance(decision, RouteTo) and decision.model == model
            event_id, tensor = workload.decode(message.value)
            assert event_id == message.event_id and tensor.shape == (150, 150, 3)
            assert -1.0 <= tensor.min() < tensor.max() <= 1.0  # real pixels, not a flat image
        assert workload.reference_decode is None


def test_a_bundled_study_is_one_study_and_one_series_of_distinct_real_images() -> None:
    count = len(bundled.templates("brain_mri_tumour"))
    study = bundled.messages("brain_mri_tumour", count + 1, one_study=True)
    headers = [_header(m.value) for m in study]
    assert len({m.key for m in study}) == 1 and len({m.event_id for m in study}) == count + 1
    assert {h.StudyInstanceUID for h in headers} == {study[0].key.decode()}
    assert len({h.SeriesInstanceUID for h in headers}) == 1
    assert [h.SOPInstanceUID for h in headers] == [m.event_id for m in study]
    pixels = [pydicom.dcmread(io.BytesIO(m.value)).pixel_array for m in study]
    assert not np.array_equal(pixels[0], pixels[1])  # the bundled images in turn
    assert np.array_equal(pixels[0], pixels[count])


def test_the_densenet_stand_in_declares_what_its_fixture_rules_route(tmp_path: Path) -> None:
    from medstream_tools.bench import densenet

    workload = CATALOGUE["scans-densenet121"]
    config = densenet.triton_config()
    params = {k: v["string_value"] for k, v in config["parameters"].items()}
    info = ModelInfo(densenet.NAME, "1", densenet.MAX_BATCH, tuple(densenet.LABELS.split(",")),
                     params, {"image": tuple(config["input"][0]["dims"])})
    rules = load_rules(workload.routing_rules(tmp_path))
    assert rules.models == (densenet.NAME,)
    assert set(check_rules(rules, {densenet.NAME: info})) == {densenet.NAME}


def test_vitals_workers_keep_the_default_scan_rules(tmp_path: Path) -> None:
    assert CATALOGUE["vitals"].routing_rules(tmp_path) is None
    assert load_rules(CATALOGUE["scans-ct512"].routing_rules(tmp_path)).models == ("scan_cnn",)
