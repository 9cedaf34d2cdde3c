"""Keyed pseudonyms: HMAC-SHA256 over a namespaced identifier.

The same identifier and key always give the same pseudonym (longitudinal linkage, idempotent
re-runs); without the key a pseudonym cannot be linked back. A key holder re-identifies by
recomputing the pseudonym of a candidate identifier and comparing.
"""

from __future__ import annotations

import hashlib
import hmac

UNKNOWN_PATIENT = "UNKNOWN-"
"""Prefix of the pseudonym given when an instance carries no patient identifier."""


class Pseudonymizer:
    """Derives patient pseudonyms and DICOM UIDs from one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("pseudonym key must be at least 16 bytes")
        self._key = key

    def digest(self, namespace: str, value: str) -> bytes:
        """HMAC-SHA256(key, namespace NUL value)."""
        message = f"{namespace}\x00{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def patient(self, patient_id: str) -> str:
        """Pseudonym for a patient identifier: "PSN-" + 32 hex characters (128 bits)."""
        return "PSN-" + self.digest("patient", patient_id.strip()).hex()[:32]

    def patient_or_unknown(self, patient_id: str, study_uid: str) -> str:
        """The patient pseudonym, or for an empty identifier one per study ("UNKNOWN-" + 32 hex):
        instances without an identifier never share a pseudonym across studies."""
        if patient_id.strip():
            return self.patient(patient_id)
        return UNKNOWN_PATIENT + self.digest("unknown-patient", study_uid.strip()).hex()[:32]

    def uid(self, uid: str) -> str:
        """A DICOM UID under the 2.25 root (PS3.5 B.2) derived from the original UID."""
        return "2.25." + str(int.from_bytes(self.digest("uid", uid.strip())[:16], "big"))

    def token(self, namespace: str, value: str) -> str:
        """Pseudonym for any other identifier (device ids, accession numbers): 32 hex characters."""
        return self.digest(namespace, value.strip()).hex()[:32]
