"""`medstream worker`: check Triton and Kafka, then run the faust worker until stopped.

Start-up fails fast (exit code 2, one clear line) when settings are invalid, Triton is not
live/ready, a model is missing, its tensors differ from what the worker sends, a test
inference on zeros fails or a kind's own check fails (the scan CNN's labels), or Kafka is
unreachable or lacks the topics. `serve(settings, kinds)` runs a worker for any kinds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import faust
import numpy as np
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from pydantic import ValidationError

from worker.app import create_app
from worker.errors import ConfigurationError, PoisonMessage, RetryableInference
from worker.inference.protocol import ModelInfo, ModelSpec
from worker.inference.triton import TritonBackend
from worker.kinds import KINDS, KindSpec, input_topics
from worker.metrics import Metrics
from worker.multiprocess import supervise
from worker.scan_input import quiet_pydicom
from worker.security import kafka_security, triton_grpc_security
from worker.settings import Settings
from worker.studies.topics import study_topic_specs

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
# The start-up test inference may be the model's first: lazy initialisation (ONNX sessions,
# TensorRT engines on GPU) can take far longer than a steady-state request's timeout.
WARMUP_TIMEOUT_S = 60.0


async def check_triton(settings: Settings,
                       kinds: Sequence[KindSpec] = KINDS) -> dict[str, ModelInfo]:
    """Server live/ready, each kind's model ready and matching and its checks passed; the
    models' ModelInfo by name."""
    backend = TritonBackend(settings.triton_grpc_url, timeout_s=settings.triton_timeout_s,
                            metrics=Metrics.create(), channel=triton_grpc_security(settings))
    input_topics(settings, kinds)  # ConfigurationError when kinds share a model or a topic
    served = [(kind, kind.model_spec(kind.settings(settings).model)) for kind in kinds]
    try:
        models = await backend.start([spec for _, spec in served])
        for kind, spec in served:
            outputs = await probe_inference(
                backend, spec, max(settings.triton_timeout_s, WARMUP_TIMEOUT_S))
            kind.check(models[spec.name], outputs)
    finally:
        await backend.stop()
    return models


async def probe_inference(backend: TritonBackend, spec: ModelSpec,
                          timeout_s: float) -> dict[str, np.ndarray]:
    """One inference on zeros (also warms the model up); ConfigurationError when it fails."""
    inputs = {t.name: np.zeros((1, *t.dims), np.float32) for t in spec.inputs}
    try:
        return await backend.infer(spec.name, inputs, timeout_s=timeout_s)
    except (PoisonMessage, RetryableInference) as exc:
        raise ConfigurationError(f"model {spec.name!r} fails a test inference: {exc}") from exc


def check_kafka(settings: Settings, kinds: Sequence[KindSpec] = KINDS) -> None:
    """The broker answers and the kinds' topics, predictions and deadletter exist (and the
    study/alert topics when those are enabled)."""
    wanted = {*input_topics(settings, kinds).values(), settings.topic_predictions,
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
    if getattr(args, "processes", 1) > 1:
        return supervise(settings, args.processes, args.log_level)
    return serve(settings, KINDS, args.log_level)


def serve(settings: Settings, kinds: Sequence[KindSpec], log_level: str = "info") -> int:
    """Check Triton and Kafka for `kinds`, then run the faust worker until it stops."""
    try:
        models = asyncio.run(check_triton(settings, kinds))
        check_kafka(settings, kinds)
    except ConfigurationError as exc:
        log.error("cannot start the worker: %s", exc)
        return EXIT_CONFIG
    for model in models.values():
        log.info("model %s version %s max_batch_size %d", model.name, model.version,
                 model.max_batch_size)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    quiet_pydicom()
    loop = asyncio.new_event_loop()  # faust binds to the current loop when the app is built
    asyncio.set_event_loop(loop)
    app = create_app(settings, models, kinds=kinds)
    worker = faust.Worker(app, loglevel=log_level, loop=loop)
    worker.execute_from_commandline()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `worker` sub-command."""
    parser = subparsers.add_parser("worker", help="run the streaming inference worker")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="run N worker processes in one consumer group (worker/multiprocess.py)")
    parser.set_defaults(func=run)
