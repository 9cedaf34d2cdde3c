"""The model card's imported-models block: rendered from evaluation results, its serving part
citing the bench grid (docs/benchmarks.md) that chose max_batch_size, not measuring one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from medstream_training.card import IMPORTED_BEGIN, IMPORTED_END, render_imported
from medstream_training.keras_sources import BRAIN_MODEL, PNEUMONIA_MODEL, SOURCES
from medstream_training.xception import DICOM_VARIANTS, metrics

ROOT = Path(__file__).resolve().parents[2]
GRID_HEADING = "## max_batch_size of the Xception models (issue 15, item 5)"


def _results(name: str) -> dict:
    """What `evaluate_model` returns for `name`, on made-up probabilities (as JSON reads it)."""
    source = SOURCES[name]
    k = len(source.labels)
    y = np.arange(2 * k) % k
    probs = np.full((2 * k, k), 0.1 / (k - 1))
    probs[np.arange(2 * k), y] = 0.9
    m = metrics(y, probs, source.labels)
    check = {"max_abs_input_diff": 0.0, "max_abs_prob_diff": 0.0, "same_class": 2 * k}
    return json.loads(json.dumps({
        "model": name, "labels": list(source.labels), "package": source.package,
        "version": source.version, "names": [f"{i}.jpg" for i in range(2 * k)],
        "source_sha256": source.sha256, "declaration": "d", "metrics": m,
        "preprocess": {"jpeg_nearest_max_abs_input_diff": 0.0, "area_max_abs_prob_diff": 0.1,
                       "area_same_class": 2 * k, "area_metrics": m},
        "dicom": dict.fromkeys(DICOM_VARIANTS, check), "max_batch_size": source.max_batch_size,
    }, default=lambda o: o.__dict__))


def test_serving_cites_the_bench_grid_and_states_the_shipped_size() -> None:
    section = render_imported({"models": {n: _results(n) for n in (BRAIN_MODEL, PNEUMONIA_MODEL)}})
    assert section.startswith(IMPORTED_BEGIN) and section.endswith(IMPORTED_END)
    serving = section.split("### Serving", 1)[1].split("### What these models", 1)[0]
    for name in (BRAIN_MODEL, PNEUMONIA_MODEL):
        assert f"`{name}` **{SOURCES[name].max_batch_size}**" in serving
    assert "python -m medstream_tools.bench.batchgrid" in serving
    assert "docs/benchmarks-grid.json" in serving
    anchor = serving.split("(benchmarks.md#", 1)[1].split(")", 1)[0]
    assert GRID_HEADING in (ROOT / "docs" / "benchmarks.md").read_text().splitlines()
    slug = re.sub(r"[^\w\- ]", "", GRID_HEADING.lstrip("# ").lower()).replace(" ", "-")
    assert anchor == slug  # GitHub's anchor of the grid's section
    assert "| max_batch_size |" not in serving  # no grid of its own
