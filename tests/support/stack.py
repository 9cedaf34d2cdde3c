"""Fixtures (a pytest plugin, see tests/conftest.py): the real local stack (broker + Triton) for
integration tests, its Settings, and uniquely named topics; plus a private Triton.

`stack` runs `medstream local up` (idempotent) for the ports and state dir in the
MEDSTREAM_* environment and fails - never skips - when the stack cannot come up. The stack
is left running for the next session unless MEDSTREAM_TEST_STOP_STACK=1; stop it with
`medstream local down`. Every test marked `integration` gets `stack` automatically.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.admin import NewTopic

from medstream_tools.localstack.process import StackError
from medstream_tools.localstack.stack import StackConfig, down, triton_up, up
from medstream_tools.ports import free_ports
from worker.settings import Settings
from worker.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]


def _stack_settings() -> Settings:
    settings = Settings()
    if not settings.state_dir.is_absolute():
        settings = settings.model_copy(update={"state_dir": ROOT / settings.state_dir})
    return settings


def unique_topic(settings: Settings, prefix: str = "test", partitions: int = 1,
                 configs: dict | None = None) -> str:
    """Create `<prefix>-<hex>` on the settings' broker; its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_topics(settings.kafka_bootstrap, [NewTopic(name, partitions, 1, topic_configs=configs)])
    return name


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The Settings (addresses, topics, state dir) that the test stack runs with."""
    return _stack_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[StackConfig]:
    """The running local stack; fails the session with the service's log tail if it can't start."""
    cfg = StackConfig.from_settings(settings)
    try:
        up(cfg, settings)
    except StackError as exc:
        pytest.fail(f"the local stack did not come up: {exc}", pytrace=False)
    yield cfg
    if os.environ.get("MEDSTREAM_TEST_STOP_STACK") == "1":
        down(cfg)


@pytest.fixture(autouse=True)
def _integration_stack(request: pytest.FixtureRequest) -> None:
    """Start the stack for every test marked `integration`."""
    if request.node.get_closest_marker("integration"):
        request.getfixturevalue("stack")


@pytest.fixture
def topic_factory(stack: StackConfig, settings: Settings) -> Callable[..., str]:
    """Create uniquely named topics: `topic_factory("scans", partitions=4) -> "scans-<hex>"`."""

    def create(prefix: str = "test", partitions: int = 1, configs: dict | None = None) -> str:
        return unique_topic(settings, prefix, partitions, configs)

    return create


def private_triton(settings: Settings, state_dir: Path) -> StackConfig:
    """Start a Triton of the test's own (free ports, state under `state_dir`), so it can be
    stopped and restarted without touching the session stack; returns its StackConfig."""
    http, grpc, metrics = free_ports(3)
    cfg = StackConfig.from_settings(settings, state_dir=state_dir, http_port=http, grpc_port=grpc,
                                    metrics_port=metrics)
    cfg.state_dir.mkdir()
    triton_up(cfg)
    return cfg
