"""Pure: the inference requests of one batch whose rows may go to different models.

Rows are grouped per model (in batch order within each group) and each group is cut into
chunks of at most that model's max_batch_size; the chunks of every group are then inferred
concurrently by the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from worker.inference.batching import chunk_slices


@dataclass(frozen=True)
class Chunk:
    """One inference request: `rows` (indices into the batch's prepared rows) for `model`."""

    model: str
    rows: tuple[int, ...]


def group_rows(models: Sequence[str]) -> dict[str, list[int]]:
    """model -> the indices of the rows routed to it, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for index, model in enumerate(models):
        groups.setdefault(model, []).append(index)
    return groups


def plan_chunks(models: Sequence[str], max_batch: Mapping[str, int]) -> list[Chunk]:
    """The requests for rows routed to `models[i]`, each within its model's `max_batch`."""
    return [Chunk(model, tuple(rows[part]))
            for model, rows in group_rows(models).items()
            for part in chunk_slices(len(rows), max_batch[model])]
