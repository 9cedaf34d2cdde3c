"""`medstream produce scans|vitals` and `medstream receive dicom|hl7`: the argument parsers."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from producers import commands
from producers.publisher import BrokerUnavailable
from worker.errors import ConfigurationError


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


def _add_common(parser: argparse.ArgumentParser, metrics_help: str) -> None:
    parser.add_argument(
        "--bootstrap", dest="set_kafka_bootstrap", metavar="BOOTSTRAP", help="Kafka HOST:PORT"
    )
    parser.add_argument("--metrics-port", type=int, help=metrics_help)
    parser.add_argument("--priority", dest="set_priority", choices=("auto", "stat", "routine"),
                        help="lane to publish to (default auto: from the event, docs/lanes.md)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `produce` and `receive` with their sub-commands."""
    produce = subparsers.add_parser("produce", help="publish scans or vital-sign windows to Kafka")
    kinds = produce.add_subparsers(dest="kind", required=True)

    scans = kinds.add_parser("scans", help="publish DICOM files, folders (recursively) or zips")
    scans.add_argument("paths", nargs="+", type=Path, help="DICOM files, folders or .zip files")
    scans.add_argument("--rate", type=float, help="at most this many messages per second")
    scans.add_argument("--loop", action="store_true", help="repeat the inputs until interrupted")
    scans.add_argument("--limit", type=int, help="stop after reading this many inputs")
    scans.add_argument(
        "--topic",
        dest="set_topic_scans",
        metavar="TOPIC",
        help="topic (default MEDSTREAM_TOPIC_SCANS)",
    )
    scans.add_argument(
        "--claim-check-dir",
        dest="set_claim_check_dir",
        metavar="CLAIM_CHECK_DIR",
        type=Path,
        help="store for files over the message limit",
    )
    _add_common(scans, "metrics port (default MEDSTREAM_PRODUCE_METRICS_PORT=9112, 0 = off)")
    scans.set_defaults(func=_guarded(commands.produce_scans))

    vitals = kinds.add_parser("vitals", help="publish vital-sign windows (CSV, MIT-BIH, simulated)")
    source = vitals.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--csv",
        nargs="+",
        type=Path,
        help="CSV: time,patient_id[,device_id],hr,spo2,rr,sbp,dbp,temp (any subset)",
    )
    source.add_argument(
        "--mitbih",
        action="store_true",
        help="heart rate from the real MIT-BIH record 208 ECG excerpt (scipy)",
    )
    source.add_argument(
        "--simulate", type=int, metavar="N", help="N SYNTHETIC patients (load tests; not real data)"
    )
    vitals.add_argument(
        "--duration",
        type=float,
        default=600.0,
        help="seconds of data per simulated patient (default 600)",
    )
    vitals.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    vitals.add_argument(
        "--start",
        help="ISO-8601 time of the first sample (default now); fixes "
        "event ids across re-runs of --mitbih/--simulate",
    )
    vitals.add_argument(
        "--window-len",
        dest="set_window_len",
        metavar="WINDOW_LEN",
        type=int,
        help="rows per window (60)",
    )
    vitals.add_argument(
        "--hop", dest="set_window_hop", metavar="HOP", type=int, help="rows between windows (30)"
    )
    vitals.add_argument(
        "--interval",
        dest="set_interval_s",
        metavar="INTERVAL",
        type=float,
        help="seconds between rows (default 1)",
    )
    vitals.add_argument("--rate", type=float, help="at most this many windows per second")
    vitals.add_argument(
        "--topic",
        dest="set_topic_vitals",
        metavar="TOPIC",
        help="topic (default MEDSTREAM_TOPIC_VITALS)",
    )
    _add_common(vitals, "metrics port (default MEDSTREAM_PRODUCE_METRICS_PORT=9112, 0 = off)")
    vitals.set_defaults(func=_guarded(commands.produce_vitals))

    receive = subparsers.add_parser("receive", help="run a DICOM or HL7 listener feeding Kafka")
    listeners = receive.add_subparsers(dest="kind", required=True)
    dicom = listeners.add_parser("dicom", help="DICOM C-STORE SCP (C-ECHO too) -> scans")
    dicom.add_argument(
        "--host", dest="set_dicom_host", metavar="HOST", help="listen address (default 127.0.0.1)"
    )
    dicom.add_argument(
        "--port",
        dest="set_dicom_port",
        metavar="PORT",
        type=int,
        help="listen port (default 11112)",
    )
    dicom.add_argument(
        "--ae-title", dest="set_dicom_ae_title", metavar="AE_TITLE", help="our AE title (MEDSTREAM)"
    )
    dicom.add_argument(
        "--topic",
        dest="set_topic_scans",
        metavar="TOPIC",
        help="topic (default MEDSTREAM_TOPIC_SCANS)",
    )
    dicom.add_argument(
        "--claim-check-dir",
        dest="set_claim_check_dir",
        metavar="CLAIM_CHECK_DIR",
        type=Path,
        help="store for instances over the message limit",
    )
    dicom.add_argument(
        "--bootstrap", dest="set_kafka_bootstrap", metavar="BOOTSTRAP", help="Kafka HOST:PORT"
    )
    dicom.add_argument(
        "--metrics-port",
        dest="set_dicom_metrics_port",
        metavar="METRICS_PORT",
        type=int,
        help="metrics port (default 9110, 0 = off)",
    )
    dicom.set_defaults(func=_guarded(commands.receive_dicom))

    hl7 = listeners.add_parser("hl7", help="HL7 v2 MLLP listener for ORU^R01 vital signs -> vitals")
    hl7.add_argument("--host", dest="set_hl7_host", help="listen address (default 127.0.0.1)")
    hl7.add_argument("--port", dest="set_hl7_port", type=int, help="listen port (default 2575)")
    hl7.add_argument(
        "--timezone",
        dest="set_hl7_timezone",
        metavar="ZONE",
        help="IANA zone of times sent without an offset (default UTC)",
    )
    hl7.add_argument(
        "--interval",
        dest="set_hl7_interval_s",
        type=float,
        help="seconds per window row (default 60)",
    )
    hl7.add_argument(
        "--window-len",
        dest="set_window_len",
        metavar="WINDOW_LEN",
        type=int,
        help="rows per window (60)",
    )
    hl7.add_argument(
        "--topic",
        dest="set_topic_vitals",
        metavar="TOPIC",
        help="topic (default MEDSTREAM_TOPIC_VITALS)",
    )
    hl7.add_argument(
        "--bootstrap", dest="set_kafka_bootstrap", metavar="BOOTSTRAP", help="Kafka HOST:PORT"
    )
    hl7.add_argument(
        "--metrics-port",
        dest="set_hl7_metrics_port",
        type=int,
        help="metrics port (default 9111, 0 = off)",
    )
    hl7.set_defaults(func=_guarded(commands.receive_hl7))
