"""Handlers of `medstream produce scans|vitals` and `medstream receive dicom|hl7`.

Each builds the settings, pseudonymizer, metrics and Kafka publisher once and runs its job.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from producers.deid.pseudonym import Pseudonymizer
from producers.metrics import ProducerMetrics, serve_metrics
from producers.priority import Priority, publish_topic
from producers.publisher import Publisher
from producers.settings import ProducerSettings
from worker.errors import ConfigurationError

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> ProducerSettings:
    """Settings from the environment; command-line options (`set_<field>`) take precedence."""
    overrides = {
        key.removeprefix("set_"): value
        for key, value in vars(args).items()
        if key.startswith("set_") and value is not None
    }
    return ProducerSettings(**overrides)


def pseudonymizer(settings: ProducerSettings) -> Pseudonymizer | None:
    """The keyed pseudonymizer, or None when de-identification is switched off."""
    if not settings.deid:
        log.warning("de-identification is OFF (MEDSTREAM_DEID=false): identifiers are published")
        return None
    return Pseudonymizer(settings.require_key())


def metrics_for(settings: ProducerSettings, port: int, *, required: bool) -> ProducerMetrics:
    """Producer metrics on their own registry, served on 127.0.0.1:`port` (0 = off)."""
    registry = CollectorRegistry()
    metrics = ProducerMetrics.create(registry)
    serve_metrics(registry, settings.metrics_host, port, required=required)
    return metrics


def produce_scans(args: argparse.Namespace) -> int:
    """`produce scans`: publish DICOM inputs; exit 1 when Kafka did not acknowledge a message."""
    from producers.produce_scans import produce_scans as run

    settings = _settings(args)
    pseudonyms = pseudonymizer(settings)
    metrics = metrics_for(
        settings, args.metrics_port or settings.produce_metrics_port, required=False
    )
    publisher = Publisher(settings, client_id="medstream-produce-scans")
    try:
        tally = run(
            args.paths,
            settings,
            publisher,
            metrics,
            pseudonyms=pseudonyms,
            rate=args.rate,
            loop=args.loop,
            limit=args.limit,
        )
    finally:
        publisher.close()
    return 1 if tally.failed else 0


def _start_time(text: str | None) -> datetime:
    """--start as an aware UTC datetime; default now (whole seconds)."""
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _vitals_series(args: argparse.Namespace, settings: ProducerSettings) -> tuple[str, list, list]:
    """(source label, series, skipped CSV rows) for the chosen input."""
    from producers import vitals_sim, vitals_sources

    start, interval = _start_time(args.start), settings.interval_s
    if args.simulate is not None:
        series = vitals_sim.simulate(
            args.simulate,
            duration_s=args.duration,
            interval_s=interval,
            start=start,
            seed=args.seed,
        )
        return "simulate", series, []
    if args.mitbih:
        return "mitbih", [vitals_sources.mitbih_series(interval_s=interval, start=start)], []
    series, skipped = [], []
    for path in args.csv:
        result = vitals_sources.read_csv(path, interval_s=interval, origin=start)
        series += result.series
        skipped += [(f"{path}:{line}", reason) for line, reason in result.skipped]
    return "csv", series, skipped


def produce_vitals(args: argparse.Namespace) -> int:
    """`produce vitals`: publish windows of CSV, MIT-BIH or simulated series."""
    from producers.produce_vitals import produce_vitals as run
    from producers.progress import Progress
    from producers.vitals_sources import SourceError

    settings = _settings(args)
    pseudonyms = pseudonymizer(settings)
    try:
        source, series, skipped = _vitals_series(args, settings)
    except (SourceError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from exc
    metrics = metrics_for(
        settings, args.metrics_port or settings.produce_metrics_port, required=False
    )
    progress = Progress(f"vitals ({source})")
    for where, reason in skipped:
        metrics.rejected.labels(source, "bad_row").inc()
        progress.report(where, "bad_row", reason)
    publisher = Publisher(settings, client_id=f"medstream-produce-vitals-{source}")
    try:
        tally = run(
            series,
            publisher,
            metrics,
            topic=publish_topic(settings, settings.vitals, Priority(), lambda: None),
            source=source,
            pseudonyms=pseudonyms,
            window_len=settings.window_len,
            hop=settings.window_hop,
            rate=args.rate,
            progress=progress,
        )
    finally:
        publisher.close()
    return 1 if tally.failed else 0


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def receive_dicom(args: argparse.Namespace) -> int:
    """`receive dicom`: run the C-STORE SCP until SIGINT/SIGTERM."""
    from producers.dicom_scp import StoreHandler, start_scp

    settings = _settings(args)
    pseudonyms = pseudonymizer(settings)
    metrics = metrics_for(settings, settings.dicom_metrics_port, required=True)
    publisher = Publisher(settings, client_id="medstream-receive-dicom")
    try:
        server = start_scp(StoreHandler(settings, publisher, metrics, pseudonyms))
        print(
            f"DICOM SCP {settings.dicom_ae_title} on {settings.dicom_host}:{settings.dicom_port} "
            f"-> {settings.scan.topic}; metrics on {settings.metrics_host}:"
            f"{settings.dicom_metrics_port}",
            file=sys.stderr,
            flush=True,
        )
        try:
            _wait_for_signal()
        finally:
            server.shutdown()
    finally:
        publisher.close()
    return 0


def receive_hl7(args: argparse.Namespace) -> int:
    """`receive hl7`: run the MLLP listener until SIGINT/SIGTERM."""
    from producers.hl7_listener import Hl7Receiver, serve

    settings = _settings(args)
    pseudonyms = pseudonymizer(settings)
    metrics = metrics_for(settings, settings.hl7_metrics_port, required=True)
    publisher = Publisher(settings, client_id="medstream-receive-hl7")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"HL7 MLLP listener on {settings.hl7_host}:{settings.hl7_port} -> "
            f"{settings.vitals.topic}; metrics on {settings.metrics_host}:"
            f"{settings.hl7_metrics_port}",
            file=sys.stderr,
            flush=True,
        )
        await serve(Hl7Receiver(settings, publisher, metrics, pseudonyms), stop)

    try:
        asyncio.run(main())
    finally:
        publisher.close()
    return 0
