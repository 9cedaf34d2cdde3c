"""Routed scans through run_batch with a fake backend: mixed-model batches grouped and capped
per model, skips, non-image objects never decoded, per-row poison isolation kept."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medstream_tools.soak.fixture_scans import synthetic_radiograph
from tests.support.routing import fixture_scan_kind
from worker.contracts import (
    PREDICTION_SCHEMA,
    SKIP_SCHEMA,
    InputRecord,
    SkipReason,
    decode_skip,
    encode_skip,
)
from worker.errors import DeadLetterReason, PoisonMessage
from worker.grouping import Chunk, plan_chunks
from worker.metrics import Metrics
from worker.pipeline import run_batch
from worker.serving import BatchServer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POISON = -7.0


class Backend:
    """Probabilities per row (4 for "brain", else 2); a row starting with POISON is rejected."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, tuple[int, ...]]] = []
        self.inflight = self.max_inflight = 0

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (batch,) = inputs.values()
        self.calls.append((model, len(batch), batch.shape[1:]))
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await asyncio.sleep(0.001)
            if (batch.reshape(len(batch), -1)[:, 0] == POISON).any():
                raise PoisonMessage(DeadLetterReason.INFERENCE_INVALID_ARGUMENT, "rejected")
            row = [0.1, 0.2, 0.3, 0.4] if model == "brain" else [0.25, 0.75]  # one per label
            return {"probabilities": np.tile(np.float32(row), (len(batch), 1))}
        finally:
            self.inflight -= 1

    async def is_ready(self, model: str) -> bool:
        return True


def part10(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def sample(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def records(*values: bytes) -> list[InputRecord]:
    return [InputRecord("scans", 0, i, b"k", v, T0.timestamp()) for i, v in enumerate(values)]


def test_chunks_are_per_model_and_capped_at_each_models_size() -> None:
    chunks = plan_chunks(["a", "b", "a", "a", "b", "a"], {"a": 2, "b": 4})
    assert chunks == [Chunk("a", (0, 2)), Chunk("a", (3, 5)), Chunk("b", (1, 4))]


async def test_a_mixed_batch_is_grouped_per_model_and_every_record_has_one_outcome(
        tmp_path: Path) -> None:
    kind = fixture_scan_kind(tmp_path, pa="chest_pa", ap="chest_ap", brain="brain", max_batch=2)
    values = [part10(synthetic_radiograph("PA", i)) for i in range(3)]
    values += [part10(synthetic_radiograph("AP", 9)), sample("emri_small.dcm"), sample("CT_small.dcm"),
               sample("test-SR.dcm"), b"not a scan", part10(synthetic_radiograph("LL", 4))]
    angio = synthetic_radiograph("PA", 5)
    angio.Modality = "XA"
    values.append(part10(angio))
    backend, metrics = Backend(), Metrics.create()
    result = await run_batch(records(*values), backend, metrics, kind, max_inflight=2)

    models = {r.offset: p.model for r, p in result.predictions}
    assert models == {0: "chest_pa", 1: "chest_pa", 2: "chest_pa", 3: "chest_ap", 4: "brain"}
    skips = {r.offset: (s.reason, (s.rule or {}).get("name")) for r, s in result.skips}
    assert skips == {5: (SkipReason.RULE, "other-modalities"), 6: (SkipReason.NON_IMAGE, None),
                     8: (SkipReason.RULE, "other-modalities"), 9: (SkipReason.NO_ROUTE, None)}
    assert {r.offset: e.reason for r, e in result.dead_letters} == {7: DeadLetterReason.FORMAT}
    assert sorted(backend.calls) == [("brain", 1, (150, 150, 3)), ("chest_ap", 1, (1, 128, 128)),
                                     ("chest_pa", 1, (1, 128, 128)), ("chest_pa", 2, (1, 128, 128))]
    assert backend.max_inflight == 2


async def test_skip_records_carry_the_deciding_attributes_and_no_identifiers(tmp_path: Path) -> None:
    kind = fixture_scan_kind(tmp_path)
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct.PatientName, ct.SeriesDescription = "Doe^Jane", "Jane's head CT"
    (record,) = records(part10(ct))
    result = await run_batch([record], Backend(), Metrics.create(), kind)
    ((_, skip),) = result.skips
    assert skip.event_id == str(ct.SOPInstanceUID) and skip.kind == "scan"
    assert skip.rule == {"name": "other-modalities", "line": 16, "text": "no fixture model for it"}
    assert skip.attributes["Modality"] == "CT" and skip.attributes["BodyPartExamined"] is None
    assert skip.attributes["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    wire = encode_skip(skip)
    assert b"Doe" not in wire and b"Jane" not in wire
    assert encode_skip(decode_skip(wire)) == wire


async def test_skipped_and_non_image_objects_never_decode_pixels(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pixels(*args: object) -> None:
        raise AssertionError("pixel data decoded for a skipped instance")

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_pixels))
    monkeypatch.setattr("worker.scan_routing.check_dicom", no_pixels)
    kind = fixture_scan_kind(tmp_path)
    values = [sample(n) for n in ("CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "waveform_ecg.dcm",
                                  "US1_J2KR.dcm")]
    result = await run_batch(records(*values), Backend(), Metrics.create(), kind)
    assert len(result.skips) == 5 and not result.predictions and not result.dead_letters


async def test_a_rejected_row_is_isolated_within_its_model_group(tmp_path: Path) -> None:
    kind = fixture_scan_kind(tmp_path, pa="chest_pa", ap="chest_ap", max_batch=8)
    values = [part10(synthetic_radiograph("PA", i)) for i in range(4)] + [
        part10(synthetic_radiograph("AP", 5))]

    def prepare(value: bytes):
        item = kind.prepare(value)
        if value == values[2]:
            item.tensor.reshape(-1)[0] = POISON  # Triton rejects this row (INVALID_ARGUMENT)
        return item

    marked = replace(kind, prepare=prepare)
    backend = Backend()
    result = await run_batch(records(*values), backend, Metrics.create(), marked)
    assert {r.offset: e.reason for r, e in result.dead_letters} == {
        2: DeadLetterReason.INFERENCE_INVALID_ARGUMENT}
    assert sorted(r.offset for r, _ in result.predictions) == [0, 1, 3, 4]
    assert [c for c in backend.calls if c[0] == "chest_ap"] == [("chest_ap", 1, (1, 128, 128))]


class Topic:
    """A sink whose deliveries succeed at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: object = None) -> asyncio.Future:
        self.sent.append((key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_skips_go_to_the_predictions_topic_keyed_by_event_id_and_are_counted(
        tmp_path: Path) -> None:
    predictions, deadletter, metrics = Topic(), Topic(), Metrics.create()
    server = BatchServer(fixture_scan_kind(tmp_path), Backend(), metrics, predictions=predictions,
                         deadletter=deadletter, worker_id="w")
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    events = [SimpleNamespace(message=SimpleNamespace(
        topic="scans", partition=0, offset=i, key=b"study", value=v, timestamp=T0.timestamp(),
        headers=[])) for i, v in enumerate([part10(ct), part10(synthetic_radiograph("PA"))])]
    acked: list[int] = []

    async def ack(event: SimpleNamespace) -> None:
        acked.append(event.message.offset)

    await server.serve(events, ack=ack)
    assert acked == [0, 1] and deadletter.sent == []
    by_key = {key: json.loads(value) for key, value in predictions.sent}
    assert by_key[str(ct.SOPInstanceUID).encode()]["schema"] == SKIP_SCHEMA
    assert {v["schema"] for v in by_key.values()} == {SKIP_SCHEMA, PREDICTION_SCHEMA}
    value = metrics.registry.get_sample_value
    assert value("medstream_skipped_total", {"kind": "scan", "reason": "rule"}) == 1
    assert value("medstream_predictions_total", {"kind": "scan", "model": "scan_cnn"}) == 1
