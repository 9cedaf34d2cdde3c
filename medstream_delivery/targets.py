"""The three targets: build the report in the target's format, send it, classify the answer.

Each raises `TargetUnavailable` (retry) or `Rejected` (dead letter); a report the resolver
cannot map (`Unmapped`) or the builder cannot build is `Rejected` before anything is sent.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from hl7apy.exceptions import HL7apyException
from pydantic import ValidationError

from medstream_delivery.dicom_send import StoreScu
from medstream_delivery.fhir_build import bundle
from medstream_delivery.fhir_send import FhirClient
from medstream_delivery.hl7_build import message_for
from medstream_delivery.identity import Resolver, Unmapped
from medstream_delivery.keys import control_id
from medstream_delivery.mllp_send import MllpClient
from medstream_delivery.outcomes import Rejected, RejectReason
from medstream_delivery.reports import Report, StudyReport
from medstream_delivery.sr_build import structured_report


class Target(Protocol):
    """A place results are delivered to."""

    name: str

    def wants(self, report: Report) -> bool:
        """Whether this target takes this kind of report."""
        ...

    def deliver(self, reports: Sequence[Report]) -> None:
        """Deliver every report (all or none acknowledged), else raise."""
        ...


@contextmanager
def building() -> Iterator[None]:
    """Turn the builders' refusals into the record's `Rejected`."""
    try:
        yield
    except Unmapped as exc:
        raise Rejected(RejectReason.UNMAPPED_IDENTITY, str(exc)) from exc
    except (ValidationError, HL7apyException, ValueError) as exc:  # Unbuildable too
        raise Rejected(RejectReason.UNBUILDABLE, f"{type(exc).__name__}: {exc}") from exc


@dataclass
class FhirTarget:
    """One transaction Bundle per record, conditional creates."""

    client: FhirClient
    resolver: Resolver
    name: str = "fhir"
    _tls: ssl.SSLContext | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._tls = self.client.context()

    def wants(self, report: Report) -> bool:
        return True

    def deliver(self, reports: Sequence[Report]) -> None:
        with building():
            transaction = bundle(reports, self.resolver)
        self.client.post(transaction, self._tls)


@dataclass
class Hl7Target:
    """One ORU^R01 per report over MLLP."""

    client: MllpClient
    resolver: Resolver
    sender: tuple[str, str]
    receiver: tuple[str, str]
    name: str = "hl7"

    def wants(self, report: Report) -> bool:
        return True

    def deliver(self, reports: Sequence[Report]) -> None:
        for report in reports:
            with building():
                text = message_for(report, self.resolver, self.sender, self.receiver)
            self.client.send(text, control_id(report))


@dataclass
class SrTarget:
    """One SR instance per study report by C-STORE; alerts are not for PACS."""

    scu: StoreScu
    resolver: Resolver
    name: str = "sr"

    def wants(self, report: Report) -> bool:
        return isinstance(report, StudyReport)

    def deliver(self, reports: Sequence[Report]) -> None:
        for report in reports:
            if not isinstance(report, StudyReport):
                continue
            with building():
                ds = structured_report(report, self.resolver)
            self.scu.store(ds)
