"""`medstream topics`: with studies enabled, the delivery dead-letter topic is created too."""

from __future__ import annotations

from medstream_delivery.settings import DeliveryOptions, DeliverySettings
from worker.settings import Settings, StudySettings
from worker.topics import topic_specs


def test_studies_enabled_adds_study_alert_and_delivery_deadletter_topics() -> None:
    settings = DeliverySettings(_env_file=None, topic_partitions=3,
                                studies=StudySettings(enabled=True),
                                delivery=DeliveryOptions(deadletter_topic="deliver-dlq"))
    specs = {t.name: t for t in topic_specs(settings, delivery=settings.delivery)}
    assert {"studies", "alerts", "study-events", "alert-events", "deliver-dlq"} <= set(specs)
    assert specs["deliver-dlq"].num_partitions == 3


def test_no_delivery_topic_without_studies_or_options() -> None:
    base = {"scans", "scans.stat", "vitals", "vitals.stat", "predictions", "deadletter"}
    off = DeliverySettings(_env_file=None)
    assert {t.name for t in topic_specs(off, delivery=off.delivery)} == base
    on = Settings(_env_file=None, studies=StudySettings(enabled=True))
    assert "delivery-deadletter" not in {t.name for t in topic_specs(on)}
