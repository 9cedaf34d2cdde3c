"""`medstream deliver fhir|hl7|sr`: one delivery process per target.

The delivery stack (fhir.resources, hl7apy, highdicom: ~0.7 s) is imported when `deliver`
runs, not when the parser is built, so the other `medstream` commands do not pay for it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from kafka.errors import KafkaError
from pydantic import ValidationError

from medstream_delivery.settings import TARGETS, DeliverySettings
from worker.errors import ConfigurationError


def _command(args: argparse.Namespace) -> int:
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # INFO is per association
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.ERROR)
    from medstream_delivery.run import deliver

    try:
        return deliver(args.target, DeliverySettings(), limit=args.limit)
    except (ConfigurationError, KafkaError, OSError) as exc:
        print(f"medstream deliver {args.target}: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"medstream deliver: invalid settings: {problems}", file=sys.stderr)
        return 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `deliver`."""
    parser = subparsers.add_parser(
        "deliver", help="deliver study results and alerts to FHIR, HL7 v2 (MLLP) or PACS (SR)")
    parser.add_argument("target", choices=TARGETS,
                        help="fhir: FHIR R4 transaction; hl7: ORU^R01 over MLLP; sr: DICOM SR "
                             "by C-STORE")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="stop after N records are committed (demos, tests)")
    parser.set_defaults(func=_command)
