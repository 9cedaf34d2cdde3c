"""Pure batch helpers: chunking to a model's max_batch_size and splitting outputs per record."""

from __future__ import annotations

import numpy as np


def chunk_slices(n: int, size: int) -> list[slice]:
    """Consecutive slices covering range(n), each at most `size` long."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def halves(n: int) -> tuple[slice, slice]:
    """Split range(n) (n >= 2) into two non-empty halves, for bisecting a failing batch."""
    if n < 2:
        raise ValueError("cannot bisect fewer than 2 records")
    mid = n // 2
    return slice(0, mid), slice(mid, n)


def split_rows(outputs: dict[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """Per-record outputs from batched ones; every output must have `n` rows."""
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != n:
            raise ValueError(f"output {name!r} has shape {array.shape}, expected {n} rows")
    return [{name: array[i] for name, array in outputs.items()} for i in range(n)]
