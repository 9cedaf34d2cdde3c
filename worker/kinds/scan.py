"""Scans: DICOM Part-10 bytes or claim-check envelopes -> routed to an image model -> class
probabilities, or a skip record when no model is meant for the instance (worker/routing/)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime

import numpy as np

from worker.contracts import InputRecord, ScanMeta, Skip
from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
from worker.kinds.base import KindSpec
from worker.pipeline import Kind, Skipped
from worker.postprocess import kafka_time, latency_ms, scan_prediction
from worker.routing import Declaration, Router, RuleSet, check_rules, load_rules
from worker.scan_input import ClaimCheckPolicy
from worker.scan_routing import ScanRouting, prepare_scan
from worker.settings import Settings

INPUT = "image"


def scan_model_spec(name: str) -> ModelSpec:
    """The tensors the worker exchanges with an image model: an FP32 image of rank 3 (its dims
    come from the model's declared input format, checked by `check_scan_model`) ->
    probabilities."""
    return ModelSpec(
        name=name,
        inputs=(TensorSpec(INPUT, "FP32", (-1, -1, -1)),),
        outputs=(TensorSpec("probabilities", "FP32", (-1,)),),
    )


def scan_rules(settings: Settings) -> RuleSet:
    """The routing rules of the settings (RulesError naming the line when unusable)."""
    return load_rules(settings.routing.rules)


def scan_skip(skipped: Skipped[ScanMeta], record: InputRecord, produced_at: datetime) -> Skip:
    """The skip record of one scan; event time = acquisition/content time, else Kafka time."""
    meta = skipped.meta
    return Skip(
        event_id=meta.event_id, kind="scan", patient_id=meta.patient_id,
        reason=skipped.reason, rule=skipped.rule, attributes=skipped.attributes,
        event_time=meta.event_time or kafka_time(record), produced_at=produced_at,
        latency_ms=latency_ms(record, produced_at),
        extra={"study_uid": meta.study_uid, "sop_uid": meta.sop_uid,
               "series_uid": meta.series_uid, "modality": meta.modality},  # as predictions
    )


def scan_kind(settings: Settings, models: Mapping[str, ModelInfo]) -> Kind[ScanMeta]:
    """Pipeline description of scan events (decoded in the thread pool)."""
    rules = scan_rules(settings)
    declarations = check_rules(rules, models)
    policy = ClaimCheckPolicy(settings.scan.uri_root, settings.scan.max_claimcheck_bytes)
    routing = ScanRouting(Router(rules), {m: d.input_format for m, d in declarations.items()})
    return Kind(
        name="scan",
        models={name: models[name] for name in rules.models},
        input_name=INPUT,
        max_bytes=settings.scan.max_bytes,
        prepare=functools.partial(prepare_scan, policy=policy, routing=routing,
                                  require_deid=settings.require_deidentified),
        build=scan_prediction,
        offload=True,
        skip=scan_skip,
    )


def large_messages(settings: Settings) -> dict[str, str]:
    """Scans up to the broker-wide message limit (larger files travel by claim-check)."""
    return {"max.message.bytes": str(settings.max_message_bytes)}


def check_labels(model: ModelInfo, outputs: Mapping[str, np.ndarray]) -> None:
    """The CNN's config names its labels, one per probability it returns."""
    if not model.labels:
        raise ConfigurationError(
            f"model {model.name!r} has no 'labels' parameter in its config.pbtxt")
    returned = outputs["probabilities"].shape[-1]
    if returned != len(model.labels):
        raise ConfigurationError(f"model {model.name!r} returns {returned} probabilities but "
                                 f"its config names {len(model.labels)} labels")


def check_scan_model(model: ModelInfo, outputs: Mapping[str, np.ndarray]) -> None:
    """The model's declared input format produces the input dims it serves, and its labels
    match its probabilities."""
    fmt = Declaration.of(model).input_format
    served = tuple(model.input_dims.get(INPUT, ()))
    if served != fmt.dims:
        raise ConfigurationError(f"model {model.name!r} declares input_format {fmt.id!r} "
                                 f"({list(fmt.dims)}) but its input {INPUT!r} is {list(served)}")
    check_labels(model, outputs)


SCAN = KindSpec(name="scan", model_spec=scan_model_spec, build=scan_kind,
                topic_configs=large_messages, check=check_scan_model, routing=scan_rules)
