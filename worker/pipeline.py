"""One batch through the pipeline: decode + preprocess, infer, post-process.

`run_batch(records, backend, metrics, kind)` returns predictions and dead letters; every input
record ends in exactly one of the two: an unexpected exception while decoding, stacking or
post-processing one record is that record's dead letter (`decode_error`, `internal_error`),
never the batch's (a `ConfigurationError` still propagates: it is the worker's, not the
record's). It produces nothing to Kafka and acks nothing: the agent does that after delivery.
Decoding runs in a thread pool when the kind asks for it (DICOM), so the event loop keeps
serving. A batch larger than the model's max_batch_size is split into chunks that are inferred
concurrently (at most `max_inflight` at once); a chunk that Triton rejects with
INVALID_ARGUMENT is bisected until the offending records are isolated.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np

from worker.contracts import InputRecord, Prediction, check_size, input_digest
from worker.errors import ConfigurationError, DeadLetterReason, PoisonMessage, unexpected
from worker.inference.batching import chunk_slices, halves, split_rows
from worker.inference.protocol import InferenceBackend, ModelInfo
from worker.metrics import Metrics

Meta = TypeVar("Meta")
Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Kind(Generic[Meta]):
    """How one kind of event (scan, vitals) goes through the pipeline."""

    name: str  # the kind's registry name (worker/kinds/): the `kind` metric label
    model: ModelInfo
    input_name: str
    max_bytes: int
    prepare: Callable[[bytes], tuple[Meta, np.ndarray]]  # blocking: bytes -> (meta, tensor)
    build: Callable[[Meta, Outputs, InputRecord, ModelInfo, datetime], Prediction]
    offload: bool = False  # run `prepare` in the executor


@dataclass
class BatchResult:
    """What became of each record of a batch."""

    predictions: list[tuple[InputRecord, Prediction]] = field(default_factory=list)
    dead_letters: list[tuple[InputRecord, PoisonMessage]] = field(default_factory=list)


Prepared = tuple[Any, np.ndarray, str]  # (meta, tensor, input digest)


def _prepare_one(kind: Kind[Any], value: bytes) -> Prepared:
    """Size check, decode and preprocess one value; any failure is this input's fault."""
    check_size(value, kind.max_bytes)
    try:
        meta, tensor = kind.prepare(value)
    except PoisonMessage:
        raise
    except Exception as exc:  # a decoder bug on odd input must not stop the stream
        raise unexpected(exc, DeadLetterReason.DECODE_ERROR, f"decoding a {kind.name} event") from exc
    return meta, tensor, input_digest(value)


async def _prepare_all(kind: Kind[Any], records: Sequence[InputRecord],
                       executor: Executor | None) -> list[Prepared | PoisonMessage]:
    async def one(record: InputRecord) -> Prepared | PoisonMessage:
        try:
            if kind.offload:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(executor, _prepare_one, kind, record.value)
            return _prepare_one(kind, record.value)
        except PoisonMessage as exc:
            return exc

    return list(await asyncio.gather(*(one(r) for r in records)))


def _common_shape(prepared: Sequence[Prepared | PoisonMessage]) -> tuple[int, ...] | None:
    """The most common tensor shape of a batch (the others cannot be stacked with it)."""
    shapes = Counter(item[1].shape for item in prepared if not isinstance(item, PoisonMessage))
    return shapes.most_common(1)[0][0] if shapes else None


async def infer_isolating(backend: InferenceBackend, kind: Kind[Any], batch: np.ndarray,
                          metrics: Metrics) -> list[Outputs | PoisonMessage]:
    """Per-row outputs of one chunk; rows Triton rejects come back as PoisonMessage."""
    metrics.batch_size.labels(kind.model.name).observe(len(batch))
    try:
        outputs = await backend.infer(kind.model.name, {kind.input_name: batch})
    except PoisonMessage as exc:
        if len(batch) == 1:
            return [exc]
        first, second = halves(len(batch))
        return (await infer_isolating(backend, kind, batch[first], metrics)
                + await infer_isolating(backend, kind, batch[second], metrics))
    return list(split_rows(outputs, len(batch)))


async def run_batch(
    records: Sequence[InputRecord],
    backend: InferenceBackend,
    metrics: Metrics,
    kind: Kind[Any],
    *,
    executor: Executor | None = None,
    max_inflight: int = 4,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BatchResult:
    """Serve one batch; see the module docstring. Unexpected errors propagate."""
    result = BatchResult()
    metrics.messages_consumed.labels(kind.name).inc(len(records))
    prepared = await _prepare_all(kind, records, executor)
    shape = _common_shape(prepared)
    good: list[tuple[InputRecord, Any, np.ndarray, str]] = []
    for record, item in zip(records, prepared):
        if not isinstance(item, PoisonMessage) and item[1].shape != shape:  # a kind's bug
            item = PoisonMessage(DeadLetterReason.INTERNAL_ERROR,
                                 f"{kind.name} tensor of shape {item[1].shape} in a batch of {shape}")
        if isinstance(item, PoisonMessage):
            result.dead_letters.append((record, item))
        else:
            good.append((record, *item))
    if not good:
        return result

    batch = np.stack([tensor for _, _, tensor, _ in good]).astype(np.float32, copy=False)
    limit = asyncio.Semaphore(max_inflight)

    async def chunk(part: slice) -> list[Outputs | PoisonMessage]:
        async with limit:
            return await infer_isolating(backend, kind, batch[part], metrics)

    parts = chunk_slices(len(good), kind.model.max_batch_size)
    answers = [row for rows in await asyncio.gather(*(chunk(p) for p in parts)) for row in rows]
    produced_at = now()
    for (record, meta, _, digest), answer in zip(good, answers):
        if isinstance(answer, PoisonMessage):
            result.dead_letters.append((record, answer))
            continue
        try:
            pred = kind.build(meta, answer, record, kind.model, produced_at)
            result.predictions.append((record, replace(pred, input_digest=digest)))
        except PoisonMessage as exc:
            result.dead_letters.append((record, exc))
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - a post-processing bug on one input: its dead letter
            result.dead_letters.append((record, unexpected(
                exc, DeadLetterReason.INTERNAL_ERROR, f"post-processing a {kind.name} event")))
    return result
