"""`medstream worker`: check Triton and Kafka, then run the faust worker until stopped.

Start-up fails fast (exit code 2, one clear line) when settings are invalid, Triton is not
live/ready, a model is missing or its tensors differ from what the worker sends, or Kafka is
unreachable or lacks the topics.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import faust
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from pydantic import ValidationError

from worker.agents.scans import scan_model_spec
from worker.agents.vitals import vitals_model_spec
from worker.app import create_app
from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo
from worker.inference.triton import TritonBackend
from worker.metrics import Metrics
from worker.scan_input import quiet_pydicom
from worker.settings import Settings

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


async def check_triton(settings: Settings) -> dict[str, ModelInfo]:
    """Server live/ready, both models ready and matching; their ModelInfo by name."""
    backend = TritonBackend(settings.triton_grpc_url, timeout_s=settings.triton_timeout_s,
                            metrics=Metrics.create())
    try:
        models = await backend.start([scan_model_spec(settings.scan_model),
                                      vitals_model_spec(settings.vitals_model)])
    finally:
        await backend.stop()
    if not models[settings.scan_model].labels:
        raise ConfigurationError(
            f"model {settings.scan_model!r} has no 'labels' parameter in its config.pbtxt")
    return models


def check_kafka(settings: Settings) -> None:
    """The broker answers and the four topics exist."""
    wanted = {settings.topic_scans, settings.topic_vitals, settings.topic_predictions,
              settings.topic_deadletter}
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                 client_id=f"{settings.app_id}-check", request_timeout_ms=10_000)
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
    try:
        models = asyncio.run(check_triton(settings))
        check_kafka(settings)
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
    app = create_app(settings, models)
    worker = faust.Worker(app, loglevel=args.log_level, loop=loop)
    worker.execute_from_commandline()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `worker` sub-command."""
    parser = subparsers.add_parser("worker", help="run the streaming inference worker")
    parser.set_defaults(func=run)
