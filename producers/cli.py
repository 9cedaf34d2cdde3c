"""`medstream produce scans|vitals` and `medstream receive dicom|hl7`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from producers.deid.pseudonym import Pseudonymizer
from producers.metrics import ProducerMetrics, serve_metrics
from producers.publisher import BrokerUnavailable, Publisher
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


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the expected start-up failures into one clear line and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("kafka").setLevel(logging.CRITICAL)  # we report failures ourselves
            logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # INFO is per association
        try:
            return handler(args)
        except (ConfigurationError, BrokerUnavailable, OSError) as exc:
            print(f"medstream {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except ValidationError as exc:
            problems = "; ".join(error["msg"] for error in exc.errors())
            print(f"medstream {args.command}: invalid settings: {problems}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130

    return run


def _produce_scans(args: argparse.Namespace) -> int:
    from producers.produce_scans import produce_scans

    settings = _settings(args)
    pseudonyms = pseudonymizer(settings)
    metrics = metrics_for(settings, args.metrics_port or settings.produce_metrics_port, required=False)
    publisher = Publisher(settings, client_id="medstream-produce-scans")
    try:
        tally = produce_scans(
            args.paths, settings, publisher, metrics, pseudonyms=pseudonyms,
            rate=args.rate, loop=args.loop, limit=args.limit,
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
            args.simulate, duration_s=args.duration, interval_s=interval, start=start,
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


def _produce_vitals(args: argparse.Namespace) -> int:
    from producers.produce_vitals import produce_vitals
    from producers.progress import Progress
    from producers.vitals_sources import SourceError

    settings = _settings(args)
    pseudonyms = pseudonymizer(settings)
    try:
        source, series, skipped = _vitals_series(args, settings)
    except (SourceError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from exc
    metrics = metrics_for(settings, args.metrics_port or settings.produce_metrics_port, required=False)
    progress = Progress(f"vitals ({source})")
    for where, reason in skipped:
        metrics.rejected.labels(source, "bad_row").inc()
        progress.report(where, "bad_row", reason)
    publisher = Publisher(settings, client_id=f"medstream-produce-vitals-{source}")
    try:
        tally = produce_vitals(
            series, publisher, metrics, topic=settings.topic_vitals, source=source,
            pseudonyms=pseudonyms, window_len=settings.window_len, hop=settings.window_hop,
            rate=args.rate, progress=progress,
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


def _receive_dicom(args: argparse.Namespace) -> int:
    from producers.dicom_scp import StoreHandler, start_scp

    settings = _settings(args)
    pseudonyms = pseudonymizer(settings)
    metrics = metrics_for(settings, settings.dicom_metrics_port, required=True)
    publisher = Publisher(settings, client_id="medstream-receive-dicom")
    try:
        server = start_scp(StoreHandler(settings, publisher, metrics, pseudonyms))
        print(
            f"DICOM SCP {settings.dicom_ae_title} on {settings.dicom_host}:{settings.dicom_port} "
            f"-> {settings.topic_scans}; metrics on {settings.metrics_host}:"
            f"{settings.dicom_metrics_port}", file=sys.stderr, flush=True,
        )
        try:
            _wait_for_signal()
        finally:
            server.shutdown()
    finally:
        publisher.close()
    return 0


def _receive_hl7(args: argparse.Namespace) -> int:
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
            f"{settings.topic_vitals}; metrics on {settings.metrics_host}:"
            f"{settings.hl7_metrics_port}", file=sys.stderr, flush=True,
        )
        await serve(Hl7Receiver(settings, publisher, metrics, pseudonyms), stop)

    try:
        asyncio.run(main())
    finally:
        publisher.close()
    return 0


def _add_common(parser: argparse.ArgumentParser, metrics_help: str) -> None:
    parser.add_argument("--bootstrap", dest="set_kafka_bootstrap", help="Kafka HOST:PORT")
    parser.add_argument("--metrics-port", type=int, help=metrics_help)


def _import_faust_with_clean_argv() -> None:
    """Import faust before the worker's command module does, with our options hidden.

    On first import faust reads `--loop`/`-L`/`--datadir` from sys.argv and switches the event
    loop, so `medstream produce scans --loop` crashed while the parser was still being built
    (worker.run imports faust at module level).
    """
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        importlib.import_module("faust")
    finally:
        sys.argv = argv


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `produce` and `receive` with their sub-commands."""
    _import_faust_with_clean_argv()
    produce = subparsers.add_parser("produce", help="publish scans or vital-sign windows to Kafka")
    kinds = produce.add_subparsers(dest="kind", required=True)

    scans = kinds.add_parser("scans", help="publish DICOM files, folders (recursively) or zips")
    scans.add_argument("paths", nargs="+", type=Path, help="DICOM files, folders or .zip files")
    scans.add_argument("--rate", type=float, help="at most this many messages per second")
    scans.add_argument("--loop", action="store_true", help="repeat the inputs until interrupted")
    scans.add_argument("--limit", type=int, help="stop after reading this many inputs")
    scans.add_argument("--topic", dest="set_topic_scans", help="topic (default MEDSTREAM_TOPIC_SCANS)")
    scans.add_argument("--claim-check-dir", dest="set_claim_check_dir", type=Path,
                       help="store for files over the message limit")
    _add_common(scans, "metrics port (default MEDSTREAM_PRODUCE_METRICS_PORT=9112, 0 = off)")
    scans.set_defaults(func=_guarded(_produce_scans))

    vitals = kinds.add_parser("vitals", help="publish vital-sign windows (CSV, MIT-BIH, simulated)")
    source = vitals.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", nargs="+", type=Path,
                        help="CSV: time,patient_id[,device_id],hr,spo2,rr,sbp,dbp,temp (any subset)")
    source.add_argument("--mitbih", action="store_true",
                        help="heart rate from the real MIT-BIH record 208 ECG excerpt (scipy)")
    source.add_argument("--simulate", type=int, metavar="N",
                        help="N SYNTHETIC patients (load tests; not real data)")
    vitals.add_argument("--duration", type=float, default=600.0,
                        help="seconds of data per simulated patient (default 600)")
    vitals.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    vitals.add_argument("--start", help="ISO-8601 time of the first sample (default now); fixes "
                        "event ids across re-runs of --mitbih/--simulate")
    vitals.add_argument("--window-len", dest="set_window_len", type=int, help="rows per window (60)")
    vitals.add_argument("--hop", dest="set_window_hop", type=int, help="rows between windows (30)")
    vitals.add_argument("--interval", dest="set_interval_s", type=float,
                        help="seconds between rows (default 1)")
    vitals.add_argument("--rate", type=float, help="at most this many windows per second")
    vitals.add_argument("--topic", dest="set_topic_vitals", help="topic (default MEDSTREAM_TOPIC_VITALS)")
    _add_common(vitals, "metrics port (default MEDSTREAM_PRODUCE_METRICS_PORT=9112, 0 = off)")
    vitals.set_defaults(func=_guarded(_produce_vitals))

    receive = subparsers.add_parser("receive", help="run a DICOM or HL7 listener feeding Kafka")
    listeners = receive.add_subparsers(dest="kind", required=True)
    dicom = listeners.add_parser("dicom", help="DICOM C-STORE SCP (C-ECHO too) -> scans")
    dicom.add_argument("--host", dest="set_dicom_host", help="listen address (default 127.0.0.1)")
    dicom.add_argument("--port", dest="set_dicom_port", type=int, help="listen port (default 11112)")
    dicom.add_argument("--ae-title", dest="set_dicom_ae_title", help="our AE title (MEDSTREAM)")
    dicom.add_argument("--topic", dest="set_topic_scans", help="topic (default MEDSTREAM_TOPIC_SCANS)")
    dicom.add_argument("--claim-check-dir", dest="set_claim_check_dir", type=Path,
                       help="store for instances over the message limit")
    dicom.add_argument("--bootstrap", dest="set_kafka_bootstrap", help="Kafka HOST:PORT")
    dicom.add_argument("--metrics-port", dest="set_dicom_metrics_port", type=int,
                       help="metrics port (default 9110, 0 = off)")
    dicom.set_defaults(func=_guarded(_receive_dicom))

    hl7 = listeners.add_parser("hl7", help="HL7 v2 MLLP listener for ORU^R01 vital signs -> vitals")
    hl7.add_argument("--host", dest="set_hl7_host", help="listen address (default 127.0.0.1)")
    hl7.add_argument("--port", dest="set_hl7_port", type=int, help="listen port (default 2575)")
    hl7.add_argument("--interval", dest="set_hl7_interval_s", type=float,
                     help="seconds per window row (default 60)")
    hl7.add_argument("--window-len", dest="set_window_len", type=int, help="rows per window (60)")
    hl7.add_argument("--topic", dest="set_topic_vitals", help="topic (default MEDSTREAM_TOPIC_VITALS)")
    hl7.add_argument("--bootstrap", dest="set_kafka_bootstrap", help="Kafka HOST:PORT")
    hl7.add_argument("--metrics-port", dest="set_hl7_metrics_port", type=int,
                     help="metrics port (default 9111, 0 = off)")
    hl7.set_defaults(func=_guarded(_receive_hl7))
