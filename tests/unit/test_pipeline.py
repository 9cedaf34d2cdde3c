"""run_batch with a fake backend: batching, chunking, concurrency, poison isolation, bisecting."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from medstream_tools.soak.fixture_scans import synthetic_radiograph
from tests.support.fake_backend import POISON_VALUE, FakeBackend
from tests.support.fake_backend import toy_kind as kind
from tests.support.routing import fixture_scan_kind
from worker.contracts import InputRecord, VitalsWindow, encode_vitals
from worker.errors import RetryableInference
from worker.inference.protocol import ModelInfo
from worker.inference.resilience import Backoff, RetryingBackend
from worker.kinds.vitals import vitals_kind
from worker.metrics import Metrics
from worker.pipeline import run_batch
from worker.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def records(*values: bytes) -> list[InputRecord]:
    return [InputRecord("in", 0, i, b"key", v, T0.timestamp()) for i, v in enumerate(values)]


def outcome(result) -> tuple[dict[int, str], dict[int, str]]:
    return ({r.offset: p.event_id for r, p in result.predictions},
            {r.offset: e.reason for r, e in result.dead_letters})


async def test_every_record_ends_as_prediction_or_dead_letter() -> None:
    fake, metrics = FakeBackend(), Metrics.create()
    batch = records(b"a:0.25", b"garbage", b"c:0.75", b"x" * 101, b"crash", b"f:1")
    preds, dead = outcome(await run_batch(batch, fake, metrics, kind()))
    assert preds == {0: "a", 2: "c", 5: "f"}
    assert dead == {1: "json_decode", 3: "oversize", 4: "decode_error"}
    assert fake.calls == [("scan_cnn", 3)]
    assert metrics.registry.get_sample_value("medstream_messages_consumed_total", {"kind": "scan"}) == 6


async def test_outputs_stay_with_their_records() -> None:
    result = await run_batch(records(b"a:0.1", b"b:0.9", b"c:0.5"), FakeBackend(), Metrics.create(), kind())
    assert {p.event_id: p.outputs["p"] for _, p in result.predictions} == pytest.approx(
        {"a": 0.1, "b": 0.9, "c": 0.5})


async def test_large_batches_are_split_and_inferred_concurrently() -> None:
    fake = FakeBackend(delay_s=0.01)
    batch = records(*[f"e{i}:0.5".encode() for i in range(70)])
    result = await run_batch(batch, fake, Metrics.create(), kind(max_batch=8), max_inflight=3)
    assert sorted(n for _, n in fake.calls) == [6] + [8] * 8
    assert fake.max_inflight_seen == 3
    assert [r.offset for r, _ in result.predictions] == list(range(70))


async def test_invalid_argument_is_bisected_to_the_offending_records() -> None:
    fake = FakeBackend()
    values = [f"e{i}:0.5".encode() for i in range(16)]
    values[3] = values[11] = f"bad:{POISON_VALUE}".encode()
    preds, dead = outcome(await run_batch(records(*values), fake, Metrics.create(), kind()))
    assert dead == {3: "inference_invalid_argument", 11: "inference_invalid_argument"}
    assert sorted(preds) == sorted(set(range(16)) - {3, 11})
    assert len(fake.calls) < 16  # bisection, not one request per record


async def test_retryable_failures_lose_nothing() -> None:
    async def no_sleep(_: float) -> None:
        return None

    fake = FakeBackend(failures=[RetryableInference("UNAVAILABLE", "down")] * 5)
    backend = RetryingBackend(fake, backoff=Backoff(0.01, 0.1), threshold=2,
                              metrics=Metrics.create(), sleep=no_sleep)
    preds, dead = outcome(await run_batch(records(b"a:0.2", b"b:0.4"), backend, Metrics.create(), kind()))
    assert preds == {0: "a", 1: "b"} and dead == {}


async def test_real_kinds_decode_in_a_thread_pool(tmp_path: Path) -> None:
    settings = Settings(_env_file=None)
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    buf = io.BytesIO()
    synthetic_radiograph("PA").save_as(buf, enforce_file_format=True)
    scan = fixture_scan_kind(tmp_path)  # chest radiographs -> scan_cnn, CT skipped
    with ThreadPoolExecutor(2) as pool:
        result = await run_batch(records(buf.getvalue(), b"not dicom", ct[:300], ct), FakeBackend(),
                                 Metrics.create(), scan, executor=pool)
    preds, dead = outcome(result)
    assert list(preds) == [0] and dead == {1: "format", 2: "dicom_decode"}
    assert result.predictions[0][1].outputs["label"] in {"normal", "pneumonia"}
    assert [(r.offset, s.reason) for r, s in result.skips] == [(3, "rule")]

    good = VitalsWindow("w", "PSN-" + "0" * 32, "d", datetime(2026, 1, 1, tzinfo=UTC), 1.0,
                        [[80.0] + [None] * 5])
    nan = replace(good, event_id="n", values=[[None] * 6] * 5)
    vitals = vitals_kind(settings, {"vitals_lstm": ModelInfo("vitals_lstm", "1", 64)})
    result = await run_batch(records(encode_vitals(good), encode_vitals(nan)),
                             FakeBackend(), Metrics.create(), vitals)
    preds, dead = outcome(result)
    assert preds == {0: "w"} and dead == {1: "all_missing"}
    assert set(result.predictions[0][1].outputs["forecast"]) == {"hr", "spo2", "rr", "sbp", "dbp", "temp"}
