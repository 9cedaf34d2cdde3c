"""Create the medstream topics (idempotent) with kafka-python's admin client."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from medstream_delivery.settings import DeliveryOptions, DeliverySettings
from worker.kinds import KINDS, KindSpec, kind_topics, stat_topics
from worker.settings import Settings
from worker.studies.topics import study_topic_specs

log = logging.getLogger(__name__)


def topic_specs(settings: Settings, kinds: Sequence[KindSpec] = KINDS,
                delivery: DeliveryOptions | None = None) -> list[NewTopic]:
    """Each kind's input topic and, with lanes on, its STAT topic (both with the kind's topic
    configs), predictions, deadletter, and, when enabled, the topics of study results and alerts
    (worker/studies/topics.py) and, given the delivery options, the dead-letter topic of
    `medstream deliver` (docs/delivery.md).

    `scans` accepts messages up to settings.max_message_bytes, and so does `deadletter`: a dead
    letter carries the original value unchanged, so a large bad scan must fit there too.
    """
    partitions = settings.topic_partitions
    large = {"max.message.bytes": str(settings.max_message_bytes)}
    kind_topics(settings, kinds)  # ConfigurationError when kinds share a topic
    return [
        *(NewTopic(topic, partitions, 1, topic_configs=kind.topic_configs(settings))
          for kind in kinds for topic in (kind.settings(settings).topic,
                                          *stat_topics(settings, [kind]))),
        NewTopic(settings.topic_predictions, partitions, 1),
        NewTopic(settings.topic_deadletter, partitions, 1, topic_configs=large),
        *study_topic_specs(settings),
        *([NewTopic(delivery.deadletter_topic, partitions, 1)]
          if delivery is not None and settings.studies.enabled else []),
    ]


def create_topics(bootstrap: str, topics: Iterable[NewTopic], timeout_s: float = 10.0) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created."""
    wanted = list(topics)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="medstream-topics",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        created: list[str] = []
        for topic in missing:  # one by one: a concurrent creator must not fail the others
            try:
                admin.create_topics([topic], timeout_ms=int(timeout_s * 1000))
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    if created:
        log.info("created topics %s", ", ".join(created))
    return created


def ensure_topics(settings: Settings, delivery: DeliveryOptions | None = None) -> list[str]:
    """Create the topics of `topic_specs` that are missing; returns those created."""
    return create_topics(settings.kafka_bootstrap, topic_specs(settings, delivery=delivery))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `medstream topics`: create the medstream topics on MEDSTREAM_KAFKA_BOOTSTRAP (with
    studies enabled, also `delivery-deadletter`, named by MEDSTREAM_DELIVERY__DEADLETTER_TOPIC)."""
    parser = subparsers.add_parser("topics", help="create the medstream topics (idempotent)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = DeliverySettings()  # the worker's settings plus the delivery options
    created = ensure_topics(settings, settings.delivery)
    print(f"created: {', '.join(created)}" if created else "all topics present")
    return 0
