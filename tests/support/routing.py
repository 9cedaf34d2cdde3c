"""Test helpers for routed scans: models with declarations, a scan kind on fixture rules, and
the worker's scan preparation with every image routed to one model.

No Triton: `declared_model` builds the ModelInfo that start-up would read from a config.pbtxt
with the declaration parameters (worker/routing/declarations.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medstream_tools.soak.fixture_scans import fixture_rules
from worker.contracts import ScanMeta
from worker.errors import DeadLetterReason, PoisonMessage
from worker.inference.protocol import ModelInfo
from worker.kinds.scan import scan_kind
from worker.pipeline import Kind, Skipped
from worker.preprocess.formats import input_format
from worker.routing.matcher import Router
from worker.routing.rules import All, Route, Rule, RuleSet
from worker.scan_input import ClaimCheckPolicy
from worker.scan_routing import ScanRouting, prepare_scan
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


def route_every_image(input_format_id: str = "gray128") -> ScanRouting:
    """Routing that sends every image instance to one model of `input_format_id`: the worker's
    scan preparation with the rules out of the way (decoders, claim checks, receivers)."""
    rule = Rule("every-image", 1, All(()), Route("test_model"))
    return ScanRouting(Router(RuleSet(Path("<test>"), (rule,))),
                       {"test_model": input_format(input_format_id)})


def prepare_routed(value: bytes, policy: ClaimCheckPolicy, *,
                   require_deid: bool = False) -> tuple[ScanMeta, np.ndarray]:
    """`prepare_scan` under `route_every_image`: the metadata and model tensor of one event;
    PoisonMessage as the worker raises it (a skip, e.g. non_image, is a PoisonMessage too)."""
    prepared = prepare_scan(value, policy, route_every_image(), require_deid=require_deid)
    if isinstance(prepared, Skipped):
        raise PoisonMessage(DeadLetterReason(prepared.reason), "skipped")
    return prepared.meta, prepared.tensor
