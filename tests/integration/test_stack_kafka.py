"""The local broker: topics, kafka-python round trip, and a Faust agent in -> out."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from medstream_tools.localstack.broker import LOCAL_SESSION_TIMEOUT_MS
from medstream_tools.ports import free_port
from worker.settings import Settings
from worker.topics import create_topics, topic_specs

pytestmark = pytest.mark.integration

WAIT_S = 60  # upper bound for a round trip; a hang fails instead of blocking the suite


def test_medstream_topics_exist_with_configured_partitions(settings: Settings) -> None:
    names = [settings.scan.topic, settings.vitals.topic,
             settings.topic_predictions, settings.topic_deadletter]
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(names)}
    finally:
        admin.close()
    assert {n: len(described[n]["partitions"]) for n in names} == dict.fromkeys(
        names, settings.topic_partitions)


def test_scan_topic_spec_carries_a_three_megabyte_dicom(settings: Settings) -> None:
    """Tansu does not report topic configs, so check the effect: a 3 MB record round-trips."""
    spec = next(t for t in topic_specs(settings) if t.name == settings.scan.topic)
    spec.name = f"scans-big-{uuid.uuid4().hex[:12]}"
    create_topics(settings.kafka_bootstrap, [spec])
    payload = bytes(range(256)) * (3 * 1024 * 4)  # 3 MiB
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                             max_request_size=settings.max_message_bytes)
    producer.send(spec.name, key=b"study", value=payload).get(timeout=WAIT_S)
    producer.close()
    consumer = KafkaConsumer(spec.name, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=WAIT_S * 1000,
                             fetch_max_bytes=settings.max_message_bytes)
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert record.key == b"study" and record.value == payload


def test_kafka_python_round_trip_in_a_consumer_group(settings, topic_factory) -> None:
    topic = topic_factory("roundtrip", partitions=4)
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(200)}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for key, value in sent.items():
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        session_timeout_ms=LOCAL_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=1000,
    )
    received: dict[bytes, bytes] = {}
    deadline = time.monotonic() + WAIT_S
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.update((r.key, r.value) for r in records)
        consumer.commit()
    finally:
        consumer.close()
    assert received == sent


async def test_faust_agent_in_to_out(settings: Settings, topic_factory, tmp_path: Path) -> None:
    source, sink = topic_factory("faust-in", partitions=2), topic_factory("faust-out")
    app = faust.App(
        f"medstream-test-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_session_timeout=LOCAL_SESSION_TIMEOUT_MS / 1000,
        web_host="127.0.0.1",
        web_port=free_port(),
        datadir=str(tmp_path / "faust-data"),
        topic_partitions=1,
        key_serializer="raw",
        value_serializer="raw",
    )
    out_topic = app.topic(sink)

    @app.agent(app.topic(source))
    async def shout(stream):
        async for key, value in stream.items():
            await out_topic.send(key=key, value=value.upper())

    sent = {f"k{i}".encode(): f"message {i}".encode() for i in range(50)}
    await app.start()
    consumer = AIOKafkaConsumer(
        sink, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        for key, value in sent.items():
            producer.send(source, key=key, value=value)
        producer.flush()
        producer.close()
        received: dict[bytes, bytes] = {}
        async with asyncio.timeout(WAIT_S):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                received.update((r.key, r.value) for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()
        await app.stop()
    assert received == {k: v.upper() for k, v in sent.items()}
