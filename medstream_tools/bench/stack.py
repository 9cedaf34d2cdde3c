"""The local stack the benchmark runs against: reuse the running one or start it (and stop it after)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from medstream_tools.localstack import broker, triton
from medstream_tools.localstack.stack import StackConfig, down, up
from worker.settings import Settings
from worker.topics import create_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stack:
    """A ready broker + Triton; `triton_pid` is known when the stack is medstream's local one."""

    settings: Settings
    triton_pid: int | None


@contextmanager
def local_stack(settings: Settings) -> Iterator[Stack]:
    """`medstream local up` (idempotent) for these settings; stops only what it started."""
    cfg = StackConfig.from_settings(settings)
    was_running = broker.service(cfg.state_dir).pid() is not None or \
        triton.service(cfg.state_dir).pid() is not None
    for line in up(cfg, settings):
        log.info("%s", line)
    try:
        yield Stack(settings, triton.service(cfg.state_dir).pid())
    finally:
        if not was_running:
            for line in down(cfg):
                log.info("%s", line)


def create_bench_topics(settings: Settings, names: list[str], partitions: int) -> None:
    """Create fresh topics (scans-sized message limit on all of them)."""
    config = {"max.message.bytes": str(settings.max_message_bytes)}
    create_topics(settings.kafka_bootstrap,
                  [NewTopic(name, partitions, 1, topic_configs=config) for name in names])


def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete benchmark topics so the in-memory broker gives their space back (best effort:
    one by one, so a topic that was never created does not keep the others)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="medstream-bench")
    try:
        existing = set(admin.list_topics())
        for name in names:
            if name not in existing:
                continue
            try:
                admin.delete_topics([name], timeout_ms=10_000)
            except Exception as exc:  # noqa: BLE001 - a broker that refuses keeps it; not fatal
                log.warning("could not delete benchmark topic %s: %s", name, exc)
    finally:
        admin.close()
