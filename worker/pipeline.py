"""One batch through the pipeline: decode + preprocess (+ route), infer, post-process.

`run_batch(records, backend, metrics, kind)` returns predictions, skips and dead letters; every
input record ends in exactly one of the three: an unexpected exception while decoding, routing,
stacking or post-processing one record is that record's dead letter (`decode_error`,
`internal_error`), never the batch's (a `ConfigurationError` still propagates: it is the
worker's, not the record's). It produces nothing to Kafka and acks nothing: the agent does that
after delivery. Decoding runs in a thread pool when the kind asks for it
(DICOM), so the event loop keeps serving. A kind with several models (scans, routed by
worker/routing/) returns each prepared input as `Routed` to one of them, or `Skipped` when no
model is meant for it; rows are grouped per model and cut into chunks of that model's
max_batch_size (worker/grouping.py), inferred concurrently (at most `max_inflight` at once);
a chunk that Triton rejects with INVALID_ARGUMENT is bisected until the offending records are
isolated.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np

from worker.contracts import InputRecord, Prediction, Skip, SkipReason, check_size, input_digest
from worker.errors import ConfigurationError, DeadLetterReason, PoisonMessage, unexpected
from worker.grouping import Chunk, plan_chunks
from worker.inference.batching import halves, split_rows
from worker.inference.protocol import InferenceBackend, ModelInfo
from worker.metrics import Metrics

Meta = TypeVar("Meta")
Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Routed(Generic[Meta]):
    """A prepared input of a kind with several models, and the model that serves it."""

    meta: Meta
    tensor: np.ndarray
    model: str


@dataclass(frozen=True)
class Skipped(Generic[Meta]):
    """A valid input that no model is meant for, and what decided it (no identifiers)."""

    meta: Meta
    reason: SkipReason
    rule: dict[str, Any] | None  # the deciding rule's name, line and text, if a rule decided
    attributes: dict[str, Any]


Prepared = tuple[Meta, np.ndarray] | Routed[Meta] | Skipped[Meta]


@dataclass(frozen=True)
class Kind(Generic[Meta]):
    """How one kind of event (scan, vitals) goes through the pipeline."""

    name: str  # the kind's registry name (worker/kinds/): the `kind` metric label
    models: Mapping[str, ModelInfo]  # by name; `prepare` returns a plain tuple when only one
    input_name: str
    max_bytes: int
    # blocking: bytes -> (meta, tensor) for the kind's one model, or Routed / Skipped
    prepare: Callable[[bytes], Prepared[Meta]]
    build: Callable[[Meta, Outputs, InputRecord, ModelInfo, datetime], Prediction]
    offload: bool = False  # run `prepare` in the executor
    skip: Callable[[Skipped[Meta], InputRecord, datetime], Skip] | None = None  # routed kinds

    @property
    def max_batch_size(self) -> int:
        """The largest max_batch_size of the kind's models (caps the batches it takes)."""
        return max(model.max_batch_size for model in self.models.values())


@dataclass
class BatchResult:
    """What became of each record of a batch."""

    predictions: list[tuple[InputRecord, Prediction]] = field(default_factory=list)
    dead_letters: list[tuple[InputRecord, PoisonMessage]] = field(default_factory=list)
    skips: list[tuple[InputRecord, Skip]] = field(default_factory=list)


def _prepare_one(kind: Kind[Any], value: bytes) -> tuple[Prepared[Any], str]:
    """Size check, decode and preprocess one value, with the value's digest; any failure is
    this input's fault."""
    check_size(value, kind.max_bytes)
    try:
        item = kind.prepare(value)
    except (PoisonMessage, ConfigurationError):
        raise
    except Exception as exc:  # a decoder bug on odd input must not stop the stream
        raise unexpected(exc, DeadLetterReason.DECODE_ERROR, f"decoding a {kind.name} event") from exc
    return item, input_digest(value)


async def _prepare_all(kind: Kind[Any], records: Sequence[InputRecord],
                       executor: Executor | None) -> list[tuple[Prepared[Any], str] | PoisonMessage]:
    async def one(record: InputRecord) -> tuple[Prepared[Any], str] | PoisonMessage:
        try:
            if kind.offload:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(executor, _prepare_one, kind, record.value)
            return _prepare_one(kind, record.value)
        except PoisonMessage as exc:
            return exc

    return list(await asyncio.gather(*(one(r) for r in records)))


async def infer_isolating(backend: InferenceBackend, kind: Kind[Any], model: str,
                          batch: np.ndarray, metrics: Metrics) -> list[Outputs | PoisonMessage]:
    """Per-row outputs of one chunk for `model`; rows Triton rejects come back as PoisonMessage."""
    metrics.batch_size.labels(model).observe(len(batch))
    try:
        outputs = await backend.infer(model, {kind.input_name: batch})
    except PoisonMessage as exc:
        if len(batch) == 1:
            return [exc]
        first, second = halves(len(batch))
        return (await infer_isolating(backend, kind, model, batch[first], metrics)
                + await infer_isolating(backend, kind, model, batch[second], metrics))
    return list(split_rows(outputs, len(batch)))


@dataclass(frozen=True)
class _Row:
    record: InputRecord
    meta: Any
    tensor: np.ndarray
    model: str
    digest: str


def _row(kind: Kind[Any], record: InputRecord, item: tuple[Any, np.ndarray] | Routed[Any],
         digest: str) -> _Row:
    if isinstance(item, Routed):
        return _Row(record, item.meta, item.tensor, item.model, digest)
    (model,) = kind.models  # a kind with one model returns plain (meta, tensor)
    return _Row(record, item[0], item[1], model, digest)


def _odd_shapes(rows: Sequence[_Row]) -> set[int]:
    """Indices of rows whose tensor differs from the most common shape of their model's rows
    (they cannot be stacked with the others: a kind's bug, that row's dead letter)."""
    common = {model: Counter(r.tensor.shape for r in rows if r.model == model).most_common(1)[0][0]
              for model in {r.model for r in rows}}
    return {i for i, r in enumerate(rows) if r.tensor.shape != common[r.model]}


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
    good: list[_Row] = []
    skipped: list[tuple[InputRecord, Skipped[Any], str]] = []
    for record, item in zip(records, prepared):
        if isinstance(item, PoisonMessage):
            result.dead_letters.append((record, item))
        elif isinstance(item[0], Skipped):
            skipped.append((record, item[0], item[1]))
        else:
            good.append(_row(kind, record, item[0], item[1]))
    odd = _odd_shapes(good)
    for i in sorted(odd):
        row = good[i]
        result.dead_letters.append((row.record, PoisonMessage(
            DeadLetterReason.INTERNAL_ERROR,
            f"{kind.name} tensor of shape {row.tensor.shape} in a batch for {row.model}")))
    good = [row for i, row in enumerate(good) if i not in odd]
    limit = asyncio.Semaphore(max_inflight)

    async def infer(chunk: Chunk) -> list[Outputs | PoisonMessage]:
        batch = np.stack([good[i].tensor for i in chunk.rows]).astype(np.float32, copy=False)
        async with limit:
            return await infer_isolating(backend, kind, chunk.model, batch, metrics)

    chunks = plan_chunks([row.model for row in good],
                         {name: model.max_batch_size for name, model in kind.models.items()})
    answers: dict[int, Outputs | PoisonMessage] = {}
    for chunk, rows in zip(chunks, await asyncio.gather(*(infer(c) for c in chunks))):
        answers.update(zip(chunk.rows, rows))
    produced_at = now()
    for index, row in enumerate(good):
        answer = answers[index]
        if isinstance(answer, PoisonMessage):
            result.dead_letters.append((row.record, answer))
            continue
        try:
            model = kind.models[row.model]
            pred = kind.build(row.meta, answer, row.record, model, produced_at)
            result.predictions.append((row.record, replace(pred, input_digest=row.digest)))
        except PoisonMessage as exc:
            result.dead_letters.append((row.record, exc))
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - a post-processing bug on one input: its dead letter
            result.dead_letters.append((row.record, unexpected(
                exc, DeadLetterReason.INTERNAL_ERROR, f"post-processing a {kind.name} event")))
    if skipped and kind.skip is None:
        raise ConfigurationError(f"kind {kind.name!r} skipped an input but has no `skip` builder")
    for record, item, digest in skipped:
        try:
            skip = kind.skip(item, record, produced_at)
            result.skips.append((record, replace(skip, input_digest=digest)))
        except Exception as exc:  # noqa: BLE001 - building one skip record failed: its dead letter
            result.dead_letters.append((record, unexpected(
                exc, DeadLetterReason.INTERNAL_ERROR, f"recording a skipped {kind.name} event")))
    return result
