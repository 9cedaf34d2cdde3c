"""Per-record containment at the batch-loop level: whatever the bytes, `BatchServer.serve`
returns, acks every input, and every input ends as exactly one prediction or dead letter, with
sinks that refuse oversize records the way Kafka does (hypothesis; fake backend and sinks)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from tests.support.fake_backend import FakeBackend
from worker.contracts import (
    InputRecord,
    Prediction,
    ScanEnvelope,
    VitalsWindow,
    decode_deadletter_stub,
    encode_scan_envelope,
    encode_vitals,
    is_pseudonym,
)
from worker.inference.protocol import ModelInfo
from worker.kinds.scan import scan_kind
from worker.kinds.vitals import vitals_kind
from worker.metrics import Metrics
from worker.outputs import RECORD_HEADROOM_BYTES
from worker.pipeline import Kind
from worker.serving import BatchServer
from worker.settings import Settings

LIMIT = 4096  # what the server lets through to the producer (its max request size - headroom)
SETTINGS = Settings(_env_file=None)
VITALS = vitals_kind(SETTINGS, ModelInfo("vitals_lstm", "1", 64))
SCAN = scan_kind(SETTINGS, ModelInfo("scan_cnn", "1", 32, ("normal", "pneumonia")))
CT = Path(get_testdata_file("CT_small.dcm")).read_bytes()
PSEUDONYM = "PSN-" + "a" * 32


class KafkaSink:
    """A topic that acknowledges records up to `max_bytes` and refuses larger ones like Kafka:
    at send time as aiokafka's producer does (faust wraps it in ProducerSendError), or in the
    delivery future as a broker's MESSAGE_TOO_LARGE answer does (`broker=True`)."""

    def __init__(self, max_bytes: int, *, broker: bool = False) -> None:
        self.max_bytes, self.broker = max_bytes, broker
        self.delivered: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: Any = None) -> asyncio.Future:
        size = len(key or b"") + len(value) + sum(len(k.encode()) + len(v) for k, v in headers or ())
        future = asyncio.get_running_loop().create_future()
        if size <= self.max_bytes:
            self.delivered.append((key, value, dict(headers or ())))
            future.set_result(size)
        elif self.broker:
            future.set_exception(MessageSizeTooLargeError())
        else:
            try:
                raise MessageSizeTooLargeError(f"the message is {size} bytes")
            except MessageSizeTooLargeError as exc:
                raise ProducerSendError(f"Error while sending: {exc!r}") from exc
        return future


def kafka_event(offset: int, value: bytes) -> Any:
    message = SimpleNamespace(topic="in", partition=0, offset=offset, key=b"k%d" % offset,
                              value=value, timestamp=1_700_000_000.0,
                              headers=[("content-type", b"application/json")])
    return SimpleNamespace(message=message)


def serve(kind: Kind[Any], values: list[bytes], sink_max: int = LIMIT, broker: bool = False,
          metrics: Metrics | None = None) -> tuple[KafkaSink, KafkaSink, list[int]]:
    """One batch through a BatchServer; (predictions sink, dead-letter sink, acked offsets)."""
    preds, dead = KafkaSink(sink_max, broker=broker), KafkaSink(sink_max, broker=broker)
    server = BatchServer(kind, FakeBackend(), metrics or Metrics.create(), predictions=preds,
                         deadletter=dead, worker_id="w",
                         max_request_bytes=LIMIT + RECORD_HEADROOM_BYTES)
    acked: list[int] = []

    async def ack(e: Any) -> None:
        acked.append(e.message.offset)

    asyncio.run(server.serve([kafka_event(i, v) for i, v in enumerate(values)], ack=ack))
    return preds, dead, acked


def digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def assert_one_output_each(values: list[bytes], preds: KafkaSink, dead: KafkaSink,
                           acked: list[int]) -> None:
    """Every input acked once, and answered by exactly one delivered output."""
    assert acked == list(range(len(values)))
    assert len(preds.delivered) + len(dead.delivered) == len(values)
    answered = Counter(json.loads(v)["input_digest"].removeprefix("sha256:") for _, v, _ in preds.delivered)
    offsets = [int(h["source.offset"]) for _, _, h in dead.delivered]
    assert len(set(offsets)) == len(offsets)
    for _, value, headers in dead.delivered:
        original = values[int(headers["source.offset"])]
        if value != original:  # the bounded form names the original instead of carrying it
            stub = decode_deadletter_stub(value)
            assert stub["value"] == {"bytes": len(original), "sha256": digest(original)}
            assert headers["original.value.sha256"].decode() == digest(original)
        answered[digest(original)] += 1
    assert answered == Counter(digest(v) for v in values)
    for key, value, headers in preds.delivered:
        body = json.loads(value)
        assert key == body["event_id"].encode("utf-8")
        assert body["kind"] != "vitals" or is_pseudonym(body["patient_id"])


def outcomes(preds: KafkaSink, dead: KafkaSink) -> None:
    """Label the example for `--hypothesis-show-statistics` (which paths the inputs reach)."""
    for _ in preds.delivered:
        event("prediction")
    for _, _, headers in dead.delivered:
        event(headers["error.type"].decode() + (" (bounded)" if "original.value.sha256" in headers else ""))


# -- inputs ----------------------------------------------------------------------------------

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
JSON_ANY = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=8), inner, max_size=6)),
    max_leaves=30)
HOSTILE_IDS = st.sampled_from(["p-\ud800", "e\x00", "\udfff", "ok\n", "x" * 300, " ", PSEUDONYM,
                               "PSN-" + "A" * 32, "1.2.840.1"])
HOSTILE = {
    "event_id": HOSTILE_IDS, "patient_id": HOSTILE_IDS, "device_id": HOSTILE_IDS,
    "interval_s": st.sampled_from([1e300, 0, -1, 3600, 3601, float("nan"), 1e-9]),
    "start": st.sampled_from(["9999-12-31T23:59:30Z", "0001-01-01T00:00:00+01:00",
                              "1969-12-31T23:59:59Z", "2099-12-31T23:00:00Z", "now"]),
    "values": st.sampled_from([[[1e308] * 6] * 60, [[-50, 97, 16, 120, 75, 37]] * 60,
                               [[75, 97, 16, 120, 130, 37]] * 10, [[None] * 6] * 3]),
    "pad": st.integers(0, 5000).map(lambda n: "x" * n),  # around the size limits
}


def good_window(event_id: str = "w", patient_id: str = PSEUDONYM, hr: float = 80.0) -> dict:
    rows = [[hr, 97.0, 16.0, 120.0, 75.0, 37.0]] * 30
    return json.loads(encode_vitals(VitalsWindow(event_id, patient_id, "d", datetime(2026, 1, 1, tzinfo=UTC),
                                                 1.0, rows)))


@st.composite
def vitals_values(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=6000))
    if choice == 1:
        return json.dumps(draw(JSON_ANY), allow_nan=True).encode()
    body = good_window(event_id=f"w-{draw(st.integers(0, 3))}")
    fields = draw(st.sets(st.sampled_from(sorted(HOSTILE)), max_size=3))
    body |= {name: draw(HOSTILE[name]) for name in fields}
    if choice == 3:
        body |= draw(st.dictionaries(st.sampled_from(sorted(body)), JSON_ANY, max_size=2))
    return json.dumps(body, allow_nan=True).encode()


@st.composite
def scan_values(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=6000))
    if choice == 1:
        return CT if draw(st.booleans()) else CT[:draw(st.integers(0, len(CT)))]
    envelope = json.loads(encode_scan_envelope(ScanEnvelope(draw(HOSTILE_IDS), "/x.dcm")))
    return json.dumps(envelope | draw(st.dictionaries(st.sampled_from(sorted(envelope)), JSON_ANY,
                                                      max_size=2))).encode()


PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                         HealthCheck.data_too_large])


@PROPERTY
@given(st.lists(vitals_values(), min_size=1, max_size=8), st.booleans())
def test_vitals_batches_always_end_in_one_output_per_input(values: list[bytes], broker: bool) -> None:
    # the sink refuses some records that pass the server's own limit: they are sent again bounded
    preds, dead, acked = serve(VITALS, values, sink_max=LIMIT - 1000, broker=broker)
    assert_one_output_each(values, preds, dead, acked)
    outcomes(preds, dead)


@PROPERTY
@given(st.lists(scan_values(), min_size=1, max_size=4), st.booleans())
def test_scan_batches_always_end_in_one_output_per_input(values: list[bytes], broker: bool) -> None:
    preds, dead, acked = serve(SCAN, values, sink_max=LIMIT - 1000, broker=broker)
    assert_one_output_each(values, preds, dead, acked)
    outcomes(preds, dead)


# -- the reproductions of issue 12, one each -------------------------------------------------

def test_each_reproduction_is_its_records_dead_letter_and_the_rest_is_served() -> None:
    good = good_window("good")
    hostile = {
        "interval_s": good_window("a") | {"interval_s": 1e300},
        "start": good_window("b") | {"start": "9999-12-31T23:59:30Z"},
        "event_id": good_window("p-\ud800"),
        "implausible": good_window("c", hr=-50.0),
        "clear_id": good_window("d", patient_id="MRN-12345"),
    }
    values = [json.dumps(v).encode() for v in (good, *hostile.values(), good | {"event_id": "good2"})]
    values.append(b"x" * 50_000)  # over the producer's limit: its dead letter is bounded
    metrics = Metrics.create()
    preds, dead, acked = serve(VITALS, values, metrics=metrics)
    assert_one_output_each(values, preds, dead, acked)
    assert sorted(json.loads(v)["event_id"] for _, v, _ in preds.delivered) == ["good", "good2"]
    reasons = {int(h["source.offset"]): h["error.type"].decode() for _, _, h in dead.delivered}
    assert reasons == {1: "schema", 2: "schema", 3: "schema", 4: "implausible",
                       5: "not_deidentified", 7: "json_decode"}
    assert metrics.registry.get_sample_value("medstream_deadletters_bounded_total",
                                             {"kind": "vitals"}) == 1


def test_a_lone_surrogate_in_a_scan_envelope_is_a_schema_dead_letter() -> None:
    value = encode_scan_envelope(ScanEnvelope("s-\ud800", "/x"))
    _, dead, acked = serve(SCAN, [value])
    assert acked == [0] and dead.delivered[0][2]["error.type"] == b"schema"


@pytest.mark.parametrize("broker", [False, True], ids=["producer-refuses", "broker-refuses"])
def test_a_dead_letter_refused_as_too_large_is_sent_again_bounded(broker: bool) -> None:
    values = [b"not json " * 400]  # 3.6 KB: under the server's limit, over the sink's
    metrics = Metrics.create()
    preds, dead, acked = serve(VITALS, values, sink_max=LIMIT - 1000, broker=broker, metrics=metrics)
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
        asyncio.run(server.serve([kafka_event(0, json.dumps(good_window()).encode())], ack=ack))
    assert acked == []


def test_a_bounded_dead_letter_that_is_still_refused_raises() -> None:
    with pytest.raises(ProducerSendError):
        serve(VITALS, [b"x" * 50_000], sink_max=100)


# -- bugs in a kind's own code ---------------------------------------------------------------

def _prepare(value: bytes) -> tuple[str, np.ndarray]:
    event_id, shape = json.loads(value)
    return event_id, np.zeros(shape, np.float32)


def _build(meta: str, outputs: dict, record: InputRecord, model: ModelInfo, now: datetime) -> Prediction:
    if meta == "boom":
        raise ZeroDivisionError("a post-processing bug quoting PSN-secret")
    return Prediction(meta, "scan", None, model.name, model.version, {"p": 0.5}, now, now, 0.0)


BUGGY = Kind("scan", ModelInfo("scan_cnn", "1", 8, ("a", "b")), "image", 10_000, _prepare, _build)


def test_bugs_after_decoding_are_internal_errors_naming_type_and_place_never_text() -> None:
    values = [json.dumps(v).encode() for v in (["ok", [2, 2]], ["boom", [2, 2]], ["odd", [3]],
                                                ["\ud800", [2, 2]], ["ok2", [2, 2]])]
    preds, dead, acked = serve(BUGGY, values)
    assert_one_output_each(values, preds, dead, acked)
    assert sorted(k for k, _, _ in preds.delivered) == [b"ok", b"ok2"]
    errors = {int(h["source.offset"]): (h["error.type"], h["error.message"].decode())
              for _, _, h in dead.delivered}
    assert {offset: kind for offset, (kind, _) in errors.items()} == {
        1: b"internal_error", 2: b"internal_error", 3: b"internal_error"}
    assert errors[1][1].startswith("unexpected ZeroDivisionError at test_containment_properties.py:")
    assert "PSN-secret" not in errors[1][1]
    assert "shape (3,)" in errors[2][1]
    assert errors[3][1].startswith("unexpected UnicodeEncodeError at ")
