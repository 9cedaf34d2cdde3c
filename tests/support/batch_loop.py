"""The batch loop in-process for unit tests: one batch through a `BatchServer` with the fake
backend and sinks that refuse oversize records the way Kafka does, and the check that every
input ended as exactly one delivered output."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from tests.support.fake_backend import FakeBackend
from worker.contracts import decode_deadletter_stub, is_pseudonym
from worker.metrics import Metrics
from worker.outputs import RECORD_HEADROOM_BYTES
from worker.pipeline import Kind
from worker.serving import BatchServer

LIMIT = 4096  # what the server lets through to the producer (its max request size - headroom)


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


def serve_batch(kind: Kind[Any], values: list[bytes], sink_max: int = LIMIT, broker: bool = False,
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
