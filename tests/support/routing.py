"""Unit-test helpers for routed scans: models with declarations, a scan kind on fixture rules.

No Triton: `declared_model` builds the ModelInfo that start-up would read from a config.pbtxt
with the declaration parameters (worker/routing/declarations.py).
"""

from __future__ import annotations

from pathlib import Path

from medstream_tools.soak.fixture_scans import fixture_rules
from worker.contracts import ScanMeta
from worker.inference.protocol import ModelInfo
from worker.kinds.scan import scan_kind
from worker.pipeline import Kind
from worker.preprocess.formats import input_format
from worker.settings import Settings

LABELS = ("normal", "pneumonia")


def declared_model(name: str = "scan_cnn", *, modalities: str = "CR,DX", body_parts: str = "CHEST",
                   input_format_id: str = "gray128", labels: tuple[str, ...] = LABELS,
                   max_batch: int = 32, version: str = "1") -> ModelInfo:
    """A served image model as start-up reads it: declaration parameters and input dims."""
    params = {"labels": ",".join(labels), "modalities": modalities, "body_parts": body_parts,
              "input_format": input_format_id, "intended_use": "unit test", "version": version}
    return ModelInfo(name, f"{version}+sha256.0123456789ab", max_batch, labels, params,
                     {"image": input_format(input_format_id).dims})


def fixture_scan_kind(tmp_path: Path, *, pa: str = "scan_cnn", ap: str | None = None,
                      brain: str | None = None, max_batch: int = 32,
                      **settings: object) -> Kind[ScanMeta]:
    """The scan kind on fixture rules (medstream_tools/soak/fixture_scans.py) and declared
    models: chest -> gray128 fixture model(s), brain MR -> an RGB model."""
    rules = fixture_rules(tmp_path / "rules.yaml", pa, ap, brain)
    models = {name: declared_model(name, max_batch=max_batch) for name in {pa, ap or pa}}
    if brain is not None:
        models[brain] = declared_model(brain, modalities="MR", body_parts="BRAIN,HEAD",
                                       input_format_id="rgb150_tf_nhwc", max_batch=max_batch,
                                       labels=("glioma", "meningioma", "no_tumour", "pituitary"))
    return scan_kind(Settings(_env_file=None, routing={"rules": rules}, **settings), models)
