"""The worker's consumer fetch wait: faust hard-codes 1500 ms, the worker's transport sets it."""

from __future__ import annotations

from worker.app import _faust_app
from worker.kafka_consumer import FetchWaitConsumer, FetchWaitTransport
from worker.settings import Settings


async def test_worker_consumer_uses_the_configured_fetch_wait(tmp_path) -> None:
    settings = Settings(consumer_fetch_wait_ms=35, state_dir=tmp_path)
    app = _faust_app(settings)
    assert isinstance(app.transport, FetchWaitTransport)
    consumer = app.consumer
    assert isinstance(consumer, FetchWaitConsumer)
    aiokafka_consumer = consumer._thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == 35
        assert aiokafka_consumer._max_partition_fetch_bytes == settings.producer_max_request_size
    finally:
        await aiokafka_consumer._client.close()


def test_the_producer_keeps_faust_transport(tmp_path) -> None:
    app = _faust_app(Settings(state_dir=tmp_path))
    assert not isinstance(app.producer_transport, FetchWaitTransport)
