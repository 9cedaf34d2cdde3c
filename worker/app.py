"""create_app(settings, models): the faust app with one agent per input kind, web views, timers.

The kinds come from the registry (worker/kinds/; a caller may pass its own). `models` is what
the start-up check read from Triton (run.py): it caps each agent's batch at
the model's max_batch_size and gives predictions their model version. The long-lived Triton
client is created on faust's event loop when the app starts and closed when it stops. Timers
probe readiness (Triton, models, broker), the event loop's lag and the consumer lag (probes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import faust
from threadpoolctl import threadpool_limits

from worker.inference.protocol import ModelInfo
from worker.inference.resilience import Backoff, CircuitBreaker, RetryingBackend
from worker.inference.triton import TritonBackend
from worker.kinds import KINDS, KindSpec, input_topics, lane_topic
from worker.lanes import ROUTINE, process_lane, request_priority
from worker.lanes.stream import LaneStream
from worker.metrics import Metrics
from worker.probes import (
    LAG_INTERVAL_S,
    LOOP_TICK_S,
    PROBE_INTERVAL_S,
    LagReporter,
    LoopMonitor,
    ReadinessProbe,
)
from worker.security import kafka_security
from worker.serving import BatchServer, serve_stream
from worker.settings import KindSettings, Settings
from worker.streaming_patches import install as install_streaming_patches
from worker.studies.wiring import attach as attach_studies
from worker.web import STARTING, STOPPING, Readiness, breaker_blocker, register_views

log = logging.getLogger(__name__)

# Predictions of one batch are sent together: a short linger lets aiokafka put them in one
# produce request per partition instead of one request per send (docs/benchmarks.md).
PRODUCER_LINGER_S = 0.002


def broker_urls(bootstrap: str) -> list[str]:
    """"h1:p1,h2:p2" -> ["kafka://h1:p1", "kafka://h2:p2"]."""
    return [f"kafka://{part.strip()}" for part in bootstrap.split(",") if part.strip()]


def _faust_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.kafka_bootstrap),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.broker_session_timeout_s / 3),
        broker_commit_interval=settings.broker_commit_interval_s,
        producer_max_request_size=settings.producer_max_request_size,
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER_S,
        broker_check_crcs=settings.consumer_check_crcs,
        consumer_max_fetch_size=settings.producer_max_request_size,
        datadir=str(settings.state_dir / "faust"),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        **kafka_security(settings, "faust"),
    )
    install_streaming_patches(app, settings.consumer_fetch_wait_ms,
                              fast_wait=settings.streaming_patches)
    return app


def open_breaker_partitions(tps: Iterable[Any], breakers: Mapping[str, CircuitBreaker],
                            sources: Mapping[str, str]) -> set[Any]:
    """Of `tps`, those whose topic feeds a model with an open circuit breaker."""
    topics = {sources[model] for model, b in breakers.items() if b.is_open and model in sources}
    return {tp for tp in tps if tp.topic in topics}


def create_app(settings: Settings, models: dict[str, ModelInfo], metrics: Metrics | None = None,
               kinds: Sequence[KindSpec] = KINDS) -> faust.App:
    """The worker app; start it with faust.Worker (see worker.run)."""
    metrics = metrics or Metrics.create()
    # The decode thread pool is the parallelism: OpenBLAS threads inside each decode thread
    # only contend (2.5x the CPU per resize measured here, docs/benchmarks.md).
    threadpool_limits(limits=1, user_api="blas")
    app = _faust_app(settings)
    readiness = Readiness(metrics)
    triton = TritonBackend.from_settings(settings, metrics, request_priority(settings))
    lane = process_lane(settings)  # this process serves one lane (docs/lanes.md)
    topics = {spec.name: t for spec in kinds if (t := lane_topic(settings, spec, lane))}
    kinds = [spec for spec in kinds if spec.name in topics]  # those with this lane
    sources = input_topics(settings, kinds, lane)  # model -> input topic of this lane

    def partitions_of(model: str) -> set[Any]:
        return {tp for tp in app.consumer.assignment() if tp.topic == sources.get(model)}

    def opened(model: str) -> None:
        readiness.block(breaker_blocker(model))
        app.consumer.pause_partitions(partitions_of(model))

    def closed(model: str) -> None:
        app.consumer.resume_partitions(partitions_of(model))
        readiness.unblock(breaker_blocker(model))

    backend = RetryingBackend(
        triton, backoff=Backoff(settings.retry_initial_s, settings.retry_max_s),
        threshold=settings.breaker_threshold, metrics=metrics, on_open=opened, on_close=closed,
        probe_s=settings.breaker_probe_s,
        max_inflight=settings.triton_max_inflight
        * max(spec.settings(settings).concurrency for spec in kinds))

    @app.on_partitions_assigned.connect
    async def keep_paused_while_open(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        # faust re-activates newly assigned partitions after a rebalance; an open breaker keeps
        # its topic's partitions paused until it closes.
        app.consumer.pause_partitions(open_breaker_partitions(assigned, backend.breakers, sources))
    executor = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="medstream-decode")
    predictions = app.topic(settings.topic_predictions)
    deadletter = app.topic(settings.topic_deadletter)
    servers: list[BatchServer] = []
    for spec in kinds:
        block = spec.settings(settings)
        kind = spec.build(settings, {name: models[name] for name in spec.models(settings)})
        server = BatchServer(kind, backend, metrics, predictions=predictions, deadletter=deadletter,
                             worker_id=settings.worker_id, executor=executor,
                             max_inflight=settings.triton_max_inflight,
                             max_request_bytes=settings.producer_max_request_size, lane=lane)
        servers.append(server)
        in_lane = partial(LaneStream, kind=spec.name, lane=lane, metrics=metrics,
                          weight=settings.lanes.stat_weight)
        _add_agent(app, server, block, topics[spec.name], in_lane)
    metrics.preinitialise((s.kind.name, model) for s in servers for model in s.kind.models)
    metrics.preinitialise_skips(s.kind.name for s in servers if s.kind.skip is not None)
    metrics.preinitialise_lane(lane, (s.kind.name for s in servers))
    if lane == ROUTINE:  # study results and vitals alerts (when enabled) see both lanes' outcomes
        attach_studies(app, settings, metrics)

    async def kafka_ready() -> bool:
        # faust's aiokafka producer (private attribute): its client carries the TLS/SASL settings
        producer = getattr(app.producer, "_producer", None)
        if producer is None:
            return False
        await producer.client.fetch_all_metadata()
        return True

    probe = ReadinessProbe(readiness, triton_ready=triton.is_server_ready,
                           model_ready=triton.is_ready, models=list(sources), kafka_ready=kafka_ready)
    loop = LoopMonitor()
    lag = LagReporter(lambda: app.consumer, metrics.consumer_lag, sources.values(),
                      served=lambda: {k: v for s in servers for k, v in s.positions.items()})

    @app.task
    async def connect_triton() -> None:
        await triton.connect()
        await probe.run_once()
        readiness.unblock(STARTING)

    @app.on_before_shutdown.connect
    async def close_triton(sender: Any, **kwargs: Any) -> None:
        readiness.block(STOPPING)
        await triton.stop()
        executor.shutdown(wait=False, cancel_futures=True)

    @app.timer(interval=PROBE_INTERVAL_S)
    async def probe_dependencies() -> None:
        await probe.run_once()

    @app.timer(interval=LOOP_TICK_S, max_drift_correction=0.0)
    async def loop_tick() -> None:
        loop.tick()

    @app.timer(interval=LAG_INTERVAL_S)
    async def consumer_lag() -> None:
        await lag.report()
        for name, topic in topics.items():
            metrics.lane_lag.labels(name, lane).set(
                sum(n for (t, _), n in lag.behind.items() if t == topic))

    register_views(app, metrics, readiness, loop)
    return app


def _add_agent(app: faust.App, server: BatchServer, block: KindSettings, topic: str,
               in_lane: Callable[[Any], LaneStream]) -> None:
    """One agent (one actor) per kind on its lane's topic, serving up to `concurrency` batches
    at once; batches are capped at the largest max_batch_size of the kind's models."""
    max_batch = min(block.max_batch, server.kind.max_batch_size)

    async def agent(stream: Any) -> None:
        await serve_stream(in_lane(stream), server, max_batch, block.within_s,
                           concurrency=block.concurrency)

    agent.__name__ = agent.__qualname__ = f"{server.kind.name}_agent"
    app.agent(app.topic(topic), name=f"medstream.{server.kind.name}")(agent)
