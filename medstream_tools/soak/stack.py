"""The private stack of a soak run (and of the chaos suite): Tansu (memory storage) + Triton on
their own ports, and the fresh topics + MEDSTREAM_* environment of one run's workers.

Ports and state dir come from MEDSTREAM_CHAOS_*: KAFKA_PORT (9692), TRITON_PORT (HTTP; gRPC and
metrics are +1 and +2; 8600), WEB_PORT (first worker web port; 6666), STATE_DIR
(.medstream-chaos). The soak and the chaos suite share them: do not run both at once.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from kafka import KafkaAdminClient

from medstream_tools.localstack.stack import StackConfig
from medstream_tools.soak.worker import ROOT
from worker.kinds import KINDS
from worker.security import kafka_security
from worker.settings import Settings
from worker.topics import topic_specs


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(f"MEDSTREAM_CHAOS_{name}", default))


STATE_DIR = ROOT / os.environ.get("MEDSTREAM_CHAOS_STATE_DIR", ".medstream-chaos")
KAFKA_PORT, TRITON_PORT, WEB_PORT = (_env_int("KAFKA_PORT", 9692), _env_int("TRITON_PORT", 8600),
                                     _env_int("WEB_PORT", 6666))


def private_stack(state_dir: Path = STATE_DIR, model_repository: Path | None = None) -> StackConfig:
    """Tansu + Triton on 127.0.0.1 at KAFKA_PORT / TRITON_PORT (+1, +2), state in `state_dir`;
    `model_repository` None: the project's triton_models/."""
    cfg = StackConfig(state_dir=state_dir, broker_kind="tansu", kafka_host="127.0.0.1",
                      kafka_port=KAFKA_PORT, triton_host="127.0.0.1", http_port=TRITON_PORT,
                      grpc_port=TRITON_PORT + 1, metrics_port=TRITON_PORT + 2)
    if model_repository is None:
        return cfg
    return StackConfig(**{**cfg.__dict__, "model_repository": model_repository})


def run_environment(name: str, cfg: StackConfig, **env: str) -> tuple[Settings, dict[str, str]]:
    """Create a run's fresh topics (one per input kind, predictions, dead letters) on the
    stack's broker; (its Settings, the workers' MEDSTREAM_* environment). `env`: more
    MEDSTREAM_<NAME> values (flat names only)."""
    suffix = uuid.uuid4().hex[:8]
    bootstrap = f"127.0.0.1:{cfg.kafka_port}"
    inputs = {kind.name: f"{name}-{kind.name}-{suffix}" for kind in KINDS}
    flat = {
        "kafka_bootstrap": bootstrap,
        "triton_grpc_url": f"127.0.0.1:{cfg.grpc_port}",
        "triton_http_url": f"127.0.0.1:{cfg.http_port}",
        "triton_metrics_url": f"127.0.0.1:{cfg.metrics_port}",
        "app_id": f"{name}-{suffix}",
        "retry_max_s": "2",
        "topic_predictions": f"{name}-predictions-{suffix}",
        "topic_deadletter": f"{name}-deadletter-{suffix}",
        **{k.lower(): v for k, v in env.items()},
    }
    lanes = {"enabled": False}  # one worker process on the routine topics (docs/lanes.md)
    settings = Settings(_env_file=None, **flat, lanes=lanes,
                        **{k: {"topic": t} for k, t in inputs.items()})
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_security(settings, "kafka-python"))
    try:
        admin.create_topics(topic_specs(settings))
    finally:
        admin.close()
    variables = {f"MEDSTREAM_{k.upper()}": v for k, v in flat.items()}
    variables |= {f"MEDSTREAM_{k.upper()}__TOPIC": t for k, t in inputs.items()}
    variables["MEDSTREAM_LANES__ENABLED"] = "false"
    return settings, variables
