"""The chaos suite's private stack settings, model repository and per-scenario topics.

Ports and state dir (the reliability engineer's set by default) come from MEDSTREAM_CHAOS_*
(read in medstream_tools/soak/stack.py):
KAFKA_PORT (9692), TRITON_PORT (HTTP; gRPC and metrics are +1 and +2; 8600), WEB_PORT (first
worker web port; 6666), STATE_DIR (.medstream-chaos). The model repository holds the real
models plus `*_slow` variants (tests/chaos/slow_model.py) for the slow-Triton scenario.
"""

from __future__ import annotations

import py_compile
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_worker import ROOT, ChaosWorker
from kafka import KafkaAdminClient

from medstream_tools.localstack.stack import StackConfig
from medstream_tools.soak.fixture_scans import FIXTURE_MODEL, fixture_rules
from medstream_tools.soak.stack import KAFKA_PORT, STATE_DIR, TRITON_PORT, WEB_PORT
from worker.kinds import KINDS, default_models
from worker.security import kafka_security
from worker.settings import Settings
from worker.topics import topic_specs

MODELS = default_models()  # one per input kind (worker/kinds/)
SLOW_DELAY_MS = {"delay_min_ms": 1200, "delay_max_ms": 2400}  # the slow scenario's timeout: 2 s
# Every port a session listens on: Tansu, noida-db (+1), the TLS broker and its proxy (+2, +3);
# Triton HTTP/gRPC/metrics and the TLS Triton's (+3..+5); worker web ports (index 0..5).
SESSION_PORTS = (*range(KAFKA_PORT, KAFKA_PORT + 4), *range(TRITON_PORT, TRITON_PORT + 6),
                 *range(WEB_PORT, WEB_PORT + 6))


def slow_variant(repo: Path, model: str) -> None:
    """`<model>_slow`: the model's config on the python backend with a delay, same ONNX file."""
    source = ROOT / "triton_models" / model
    target = repo / f"{model}_slow"
    (target / "1").mkdir(parents=True)
    text = (source / "config.pbtxt").read_text()
    text = re.sub(r'^name: ".*"$', f'name: "{model}_slow"', text, flags=re.MULTILINE)
    text = re.sub(r'^backend: ".*"$', 'backend: "python"', text, flags=re.MULTILINE)
    text += "".join(f'parameters {{\n  key: "{k}"\n  value {{ string_value: "{v}" }}\n}}\n'
                    for k, v in SLOW_DELAY_MS.items())
    (target / "config.pbtxt").write_text(text)
    shutil.copy2(Path(__file__).with_name("slow_model.py"), target / "1" / "model.py")
    # Compiled here: the backend stub would write 1/__pycache__ when it first loads the model,
    # changing the directory's fingerprint, and the next triton_up would reload the model.
    py_compile.compile(str(target / "1" / "model.py"), doraise=True)
    (target / "1" / "model.onnx").symlink_to(source / "1" / "model.onnx")


def model_repository(state_dir: Path) -> Path:
    """The real models (symlinked) and their slow variants."""
    repo = state_dir / "models"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    for model in MODELS:
        (repo / model).symlink_to(ROOT / "triton_models" / model)
        slow_variant(repo, model)
    return repo


@dataclass
class Scenario:
    """Unique topics + the MEDSTREAM_* environment of the workers of one scenario."""

    name: str
    settings: Settings
    env: dict[str, str]
    state_dir: Path
    workers: list[ChaosWorker] = field(default_factory=list)  # stopped by the fixture

    @property
    def outputs(self) -> tuple[str, str]:
        return self.settings.topic_predictions, self.settings.topic_deadletter

    def worker(self, index: int = 0) -> ChaosWorker:
        self.workers.append(
            ChaosWorker(f"{self.name}-w{index}", self.env, WEB_PORT + index, self.state_dir))
        return self.workers[-1]

    def stop_workers(self) -> None:
        """Stop every worker this scenario made (whatever failed, none outlives the test)."""
        for worker in self.workers:
            worker.stop()


def routing_rules(pa: str = FIXTURE_MODEL, ap: str | None = None) -> str:
    """A fixture rules file (chest PA -> `pa`, AP -> `ap`, else `pa`; everything else skipped)
    for a scenario's ROUTING__RULES: the chaos Triton serves the fixture models only."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    return str(fixture_rules(STATE_DIR / f"routing-{uuid.uuid4().hex[:8]}.yaml", pa, ap))


def init_arguments(values: dict[str, str]) -> dict[str, Any]:
    """Settings keyword arguments from variable names without MEDSTREAM_ (KIND__FIELD nests)."""
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        block, _, name = key.lower().partition("__")
        if name:
            kwargs.setdefault(block, {})[name] = value
        else:
            kwargs[block] = value
    return kwargs


def make_scenario(name: str, bootstrap: str, cfg: StackConfig, **env: str) -> Scenario:
    """Create the scenario's topics (one per kind, predictions, deadletter) on `bootstrap` and
    build the worker environment."""
    suffix = uuid.uuid4().hex[:8]
    topics = {f"{kind.name.upper()}__TOPIC": f"chaos-{name}-{kind.name}-{suffix}" for kind in KINDS}
    topics |= {f"TOPIC_{k.upper()}": f"chaos-{name}-{k}-{suffix}" for k in ("predictions", "deadletter")}
    # STAT lanes off unless a scenario turns them on (LANES__ENABLED="true": test_worker_kill)
    topics |= {f"{k.name.upper()}__STAT_TOPIC": f"chaos-{name}-{k.name}-stat-{suffix}" for k in KINDS}
    topics["LANES__ENABLED"] = "false"
    values = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "TRITON_GRPC_URL": f"127.0.0.1:{cfg.grpc_port}",
        "TRITON_HTTP_URL": f"127.0.0.1:{cfg.http_port}",
        "TRITON_METRICS_URL": f"127.0.0.1:{cfg.metrics_port}",
        "APP_ID": f"chaos-{name}-{suffix}",
        "RETRY_MAX_S": "2",
        "ROUTING__RULES": routing_rules(),
        **topics,
        **env,
    }
    settings = Settings(_env_file=None, **init_arguments(values))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_security(settings, "kafka-python"))
    try:
        admin.create_topics(topic_specs(settings))
    finally:
        admin.close()
    state = STATE_DIR / f"{name}-{suffix}"
    state.mkdir(parents=True)
    return Scenario(name, settings, {f"MEDSTREAM_{k}": v for k, v in values.items()}, state)
