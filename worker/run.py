"""`medstream worker`: check Triton and Kafka, then run the faust worker until stopped.

Start-up fails fast (exit code 2, one clear line) when settings are invalid, the routing
rules are unusable (naming the line) or route to a model Triton does not serve or whose
declaration does not allow the rule, Triton is not live/ready, a model is missing, its
tensors differ from what the worker sends, a test inference on zeros fails or a kind's own
check fails (an image model's input format and labels), or Kafka is unreachable or lacks the
topics (the STAT topics too while lanes are on, docs/lanes.md). With lanes on or
`--processes N`, `medstream worker` supervises routine and STAT worker processes
(worker/multiprocess.py); `serve(settings, kinds)` runs one worker for any kinds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import numpy as np
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from pydantic import ValidationError

from worker.app import create_app
from worker.errors import ConfigurationError, PoisonMessage, RetryableInference
from worker.inference.protocol import ModelInfo, ModelSpec
from worker.inference.triton import TritonBackend
from worker.kinds import KINDS, KindSpec, input_topics, kind_topics, stat_topics
from worker.lanes import process_lane
from worker.metrics import Metrics
from worker.multiprocess import supervise
from worker.routing import Route, RuleSet, check_rules
from worker.scan_input import quiet_pydicom
from worker.security import kafka_security
from worker.settings import Settings
from worker.stopping import BoundedStopWorker, StopDeadline
from worker.studies.topics import study_topic_specs

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
# The start-up test inference may be the model's first: lazy initialisation (ONNX sessions,
# TensorRT engines on GPU) can take far longer than a steady-state request's timeout.
WARMUP_TIMEOUT_S = 60.0


async def check_triton(settings: Settings,
                       kinds: Sequence[KindSpec] = KINDS) -> dict[str, ModelInfo]:
    """Server live/ready, each kind's models ready and matching, routing rules allowed by the
    models' declarations, and the kinds' checks passed; the models' ModelInfo by name."""
    backend = TritonBackend.from_settings(settings, Metrics.create())
    input_topics(settings, kinds)  # ConfigurationError: shared model or topic, unusable rules
    routed = [kind.routing(settings) for kind in kinds if kind.routing is not None]
    served = [(kind, kind.model_spec(name)) for kind in kinds for name in kind.models(settings)]
    try:
        await backend.connect()
        for rules in routed:
            await check_routes_served(backend, rules, settings.triton_grpc_url)
        models = await backend.start([spec for _, spec in served],
                                     ready_wait_s=settings.triton_ready_wait_s)
        for rules in routed:
            check_rules(rules, models)
        for kind, spec in served:
            outputs = await probe_inference(
                backend, spec, models[spec.name], max(settings.triton_timeout_s, WARMUP_TIMEOUT_S))
            kind.check(models[spec.name], outputs)
    finally:
        await backend.stop()
    return models


async def check_routes_served(backend: TritonBackend, rules: RuleSet, url: str) -> None:
    """Every model the rules route to is ready on Triton; ConfigurationError naming the first
    rule whose model is not (left to `backend.start` when the server itself is not ready)."""
    if not await backend.is_server_ready():
        return
    for rule in rules.rules:
        if isinstance(rule.action, Route) and not await backend.is_ready(rule.action.model):
            raise ConfigurationError(f"{rules.where(rule)} routes to model "
                                     f"{rule.action.model!r}, which Triton at {url} does not "
                                     "serve (not loaded?)")


def probe_dims(spec: ModelSpec, model: ModelInfo) -> dict[str, tuple[int, ...]]:
    """Concrete input dims for the test inference: the spec's, with each -1 (any) taken from
    what Triton serves; ConfigurationError when a dim stays variable."""
    dims = {}
    for tensor in spec.inputs:
        served = model.input_dims.get(tensor.name, tensor.dims)
        concrete = tuple(s if d == -1 else d for d, s in zip(tensor.dims, served))
        if any(d < 1 for d in concrete):
            raise ConfigurationError(f"model {spec.name!r} input {tensor.name!r} has variable "
                                     f"dims {list(concrete)}; the worker needs fixed ones")
        dims[tensor.name] = concrete
    return dims


async def probe_inference(backend: TritonBackend, spec: ModelSpec, model: ModelInfo,
                          timeout_s: float) -> dict[str, np.ndarray]:
    """One inference on zeros (also warms the model up); ConfigurationError when it fails."""
    inputs = {name: np.zeros((1, *dims), np.float32) for name, dims in probe_dims(spec, model).items()}
    try:
        return await backend.infer(spec.name, inputs, timeout_s=timeout_s)
    except (PoisonMessage, RetryableInference) as exc:
        raise ConfigurationError(f"model {spec.name!r} fails a test inference: {exc}") from exc


def check_kafka(settings: Settings, kinds: Sequence[KindSpec] = KINDS) -> None:
    """The broker answers and the kinds' topics, predictions and deadletter exist (and the
    study/alert topics when those are enabled)."""
    wanted = {*kind_topics(settings, kinds), settings.topic_predictions,
              settings.topic_deadletter}
    wanted |= {t.name for t in study_topic_specs(settings)}  # none unless enabled
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                 client_id=f"{settings.app_id}-check", request_timeout_ms=10_000,
                                 **kafka_security(settings, "kafka-python"))
        try:
            missing = wanted - set(admin.list_topics())
        finally:
            admin.close()
    except KafkaError as exc:
        raise ConfigurationError(f"Kafka at {settings.kafka_bootstrap} unusable: {exc!r}") from exc
    if missing:
        raise ConfigurationError(
            f"topics missing on {settings.kafka_bootstrap}: {sorted(missing)} "
            "(create them with `medstream topics`)")


def run(args: argparse.Namespace) -> int:
    """Entry point of `medstream worker`."""
    try:
        settings = Settings()
    except ValidationError as exc:
        log.error("invalid settings:\n%s", exc)
        return EXIT_CONFIG
    processes = getattr(args, "processes", 1)
    stat = bool(stat_topics(settings, KINDS))  # lanes on and a kind with a STAT topic
    if settings.lanes.process == "auto" and (processes > 1 or stat):
        return supervise(settings, processes, args.log_level, stat=stat)
    return serve(settings, KINDS, args.log_level)


def serve(settings: Settings, kinds: Sequence[KindSpec], log_level: str = "info") -> int:
    """Check Triton and Kafka for `kinds`, then run the faust worker (of this process' lane,
    docs/lanes.md) until it stops."""
    try:
        if not input_topics(settings, kinds, process_lane(settings)):
            raise ConfigurationError("the STAT worker has no kind with a STAT topic (set "
                                     "MEDSTREAM_<KIND>__STAT_TOPIC, or MEDSTREAM_LANES__ENABLED)")
        models = asyncio.run(check_triton(settings, kinds))
        check_kafka(settings, kinds)
    except ConfigurationError as exc:
        log.error("cannot start the worker: %s", exc)
        return EXIT_CONFIG
    for model in models.values():
        log.info("model %s version %s max_batch_size %d", model.name, model.version,
                 model.max_batch_size)
    for kind in kinds:
        if kind.routing is not None:
            rules = kind.routing(settings)
            log.info("%s routing: %d rules from %s to %s", kind.name, len(rules.rules),
                     rules.source, ", ".join(rules.models))
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    quiet_pydicom()
    loop = asyncio.new_event_loop()  # faust binds to the current loop when the app is built
    asyncio.set_event_loop(loop)
    app = create_app(settings, models, kinds=kinds)
    worker = BoundedStopWorker(app, loglevel=log_level, loop=loop,
                               stop_deadline=StopDeadline(settings.stop_deadline_s))
    worker.execute_from_commandline()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `worker` sub-command."""
    parser = subparsers.add_parser("worker", help="run the streaming inference worker")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="run N routine worker processes in one consumer group, besides the "
                             "STAT worker (worker/multiprocess.py, docs/lanes.md)")
    parser.set_defaults(func=run)
