"""Shared fixtures: the real local stack (broker + Triton) for integration tests.

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
from medstream_tools.localstack.stack import StackConfig, down, up
from worker.settings import Settings
from worker.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]


def _stack_settings() -> Settings:
    settings = Settings()
    if not settings.state_dir.is_absolute():
        settings = settings.model_copy(update={"state_dir": ROOT / settings.state_dir})
    return settings


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
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        create_topics(settings.kafka_bootstrap, [NewTopic(name, partitions, 1, topic_configs=configs)])
        return name

    return create
