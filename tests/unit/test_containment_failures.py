"""Per-record containment, the paths the properties only sample: a dead letter refused as too
large goes again bounded, a bug in a kind's own code is its record's `internal_error`, and a
failure that is not the record's still raises (the agent fail-stops without acking)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from faust.exceptions import ProducerSendError

from tests.support.batch_loop import (
    LIMIT,
    KafkaSink,
    assert_one_output_each,
    kafka_event,
    serve_batch,
)
from tests.support.fake_backend import FakeBackend
from worker.contracts import InputRecord, Prediction, decode_deadletter_stub
from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo
from worker.kinds.vitals import vitals_kind
from worker.metrics import Metrics
from worker.pipeline import Kind
from worker.serving import BatchServer
from worker.settings import Settings

VITALS = vitals_kind(Settings(_env_file=None), {"vitals_lstm": ModelInfo("vitals_lstm", "1", 64)})


@pytest.mark.parametrize("broker", [False, True], ids=["producer-refuses", "broker-refuses"])
def test_a_dead_letter_refused_as_too_large_is_sent_again_bounded(broker: bool) -> None:
    values = [b"not json " * 400]  # 3.6 KB: under the server's limit, over the sink's
    metrics = Metrics.create()
    preds, dead, acked = serve_batch(VITALS, values, sink_max=LIMIT - 1000, broker=broker, metrics=metrics)
    assert_one_output_each(values, preds, dead, acked)
    (key, value, headers), = dead.delivered
    assert key == b"k0" and headers["error.type"] == b"json_decode" and headers["content-type"]
    assert decode_deadletter_stub(value)["source"] == {"topic": "in", "partition": 0, "offset": 0}
    assert metrics.registry.get_sample_value("medstream_deadletters_bounded_total",
                                             {"kind": "vitals"}) == 1


# -- what is not the record's fault still stops the process ----------------------------------

class Refusing(KafkaSink):
    async def send(self, *, key: bytes | None, value: bytes, headers: Any = None) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        future.set_exception(RuntimeError("NotLeaderForPartition"))
        return future


def test_a_delivery_refused_for_another_reason_raises_and_acks_nothing() -> None:
    server = BatchServer(VITALS, FakeBackend(), Metrics.create(), predictions=Refusing(LIMIT),
                         deadletter=Refusing(LIMIT), worker_id="w")
    acked: list[Any] = []

    async def ack(e: Any) -> None:
        acked.append(e)

    with pytest.raises(RuntimeError):
        asyncio.run(server.serve([kafka_event(0, b"{}")], ack=ack))
    assert acked == []


def test_a_bounded_dead_letter_that_is_still_refused_raises() -> None:
    with pytest.raises(ProducerSendError):
        serve_batch(VITALS, [b"x" * 50_000], sink_max=100)


# -- bugs in a kind's own code ---------------------------------------------------------------

def _prepare(value: bytes) -> tuple[str, np.ndarray]:
    event_id, shape = json.loads(value)
    return event_id, np.zeros(shape, np.float32)


def _build(meta: str, outputs: dict, record: InputRecord, model: ModelInfo, now: datetime) -> Prediction:
    if meta == "misconfigured":
        raise ConfigurationError("the model returned 3 probabilities for 2 labels")
    if meta == "boom":
        raise ZeroDivisionError("a post-processing bug quoting PSN-secret")
    return Prediction(meta, "scan", None, model.name, model.version, {"p": 0.5}, now, now, 0.0)


BUGGY = Kind("scan", {"scan_cnn": ModelInfo("scan_cnn", "1", 8, ("a", "b"))}, "image", 10_000, _prepare, _build)


def test_bugs_after_decoding_are_internal_errors_naming_type_and_place_never_text() -> None:
    values = [json.dumps(v).encode() for v in (["ok", [2, 2]], ["boom", [2, 2]], ["odd", [3]],
                                                ["\ud800", [2, 2]], ["ok2", [2, 2]])]
    preds, dead, acked = serve_batch(BUGGY, values)
    assert_one_output_each(values, preds, dead, acked)
    assert sorted(k for k, _, _ in preds.delivered) == [b"ok", b"ok2"]
    errors = {int(h["source.offset"]): (h["error.type"], h["error.message"].decode())
              for _, _, h in dead.delivered}
    assert {offset: kind for offset, (kind, _) in errors.items()} == {
        1: b"internal_error", 2: b"internal_error", 3: b"internal_error"}
    assert errors[1][1].startswith("unexpected ZeroDivisionError at test_containment_failures.py:")
    assert "PSN-secret" not in errors[1][1]
    assert "shape (3,)" in errors[2][1]
    assert errors[3][1].startswith("unexpected UnicodeEncodeError at ")


def test_a_configuration_error_is_the_workers_not_the_records() -> None:
    with pytest.raises(ConfigurationError):
        serve_batch(BUGGY, [json.dumps(["ok", [2, 2]]).encode(), json.dumps(["misconfigured", [2, 2]]).encode()])
