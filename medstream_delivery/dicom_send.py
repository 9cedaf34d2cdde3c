"""C-STORE one SR instance to the PACS and classify the status.

Success and warning statuses: delivered. 0xA7xx (out of resources), association rejected or
aborted, refused connection, timeouts: TargetUnavailable. Any other failure status: rejected
with the status and the PACS's ErrorComment (the record's dead letter).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Comprehensive3DSRStorage

from medstream_delivery.outcomes import Rejected, RejectReason, TargetUnavailable

SUCCESS, WARNINGS = 0x0000, frozenset({0x0001, 0xB000, 0xB006, 0xB007})


@dataclass(frozen=True)
class StoreScu:
    """Our AE title, the PACS's address and AE title, timeouts."""

    host: str
    port: int
    called_ae: str
    calling_ae: str
    timeout_s: float

    def store(self, ds: Dataset) -> int:
        """C-STORE `ds`; the DIMSE status on success, else raise (module doc)."""
        ae = AE(ae_title=self.calling_ae)
        ae.add_requested_context(Comprehensive3DSRStorage,
                                 [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = self.timeout_s
        assoc = ae.associate(self.host, self.port, ae_title=self.called_ae)
        if not assoc.is_established:
            raise TargetUnavailable("PACS association not established (refused, rejected or "
                                    "no answer)")
        try:
            status = assoc.send_c_store(ds)
        finally:
            if assoc.is_established:
                assoc.release()
        return classify(status)


def classify(status: Dataset) -> int:
    """The status code when stored, else raise TargetUnavailable / Rejected."""
    code = getattr(status, "Status", None)
    if code is None:
        raise TargetUnavailable("PACS gave no C-STORE status (aborted or timed out)")
    if code == SUCCESS or code in WARNINGS:
        return int(code)
    if code & 0xFF00 == 0xA700:
        raise TargetUnavailable(f"PACS out of resources (0x{code:04X})")
    comment = str(getattr(status, "ErrorComment", "") or "")
    raise Rejected(RejectReason.TARGET_REJECTED, f"C-STORE status 0x{code:04X} {comment}".strip())


