"""Re-identification: where a pseudonym becomes the identifier a target knows, or does not.

Default (`PseudonymsOnly`): targets receive the pseudonyms and pseudonymous UIDs as carried on
the topics; nothing leaves the delivery process that Kafka did not already hold.
`IdentityMap`: a SQLite file the hospital owns (written at the edge, where the originals are
seen, by `IdentityMap.record`), opened read-only here: patient pseudonym -> MRN, pseudonymous
DICOM UID -> original UID, pseudonymous study UID -> accession / order number. A pseudonym it
does not hold is `Unmapped` (the report's dead letter): a result filed under the wrong patient,
or under none the EHR knows, is worse than no result (docs/threat-model.md).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

PSEUDONYM_SYSTEM = "urn:medstream:pseudonym"
PSEUDONYM_AUTHORITY = "MEDSTREAM"
Kind = Literal["patient", "uid", "accession", "order"]
_SCHEMA = ("CREATE TABLE IF NOT EXISTS identities (kind TEXT NOT NULL, pseudonym TEXT NOT NULL,"
           " original TEXT NOT NULL, PRIMARY KEY (kind, pseudonym))")


class Unmapped(LookupError):
    """Re-identification is on and the map has no entry for this pseudonym (no value in text)."""


@dataclass(frozen=True)
class Patient:
    """The patient identifier a target receives."""

    value: str
    system: str  # FHIR Identifier.system
    authority: str  # HL7 PID-3.4 assigning authority
    pseudonymous: bool


@dataclass(frozen=True)
class Study:
    """What the targets learn about the study: its UID and order numbers when known."""

    study_uid: str
    accession: str | None = None
    order: str | None = None


class Resolver(Protocol):
    """Maps what the topics carry to what the targets know."""

    def patient(self, pseudonym: str) -> Patient:
        """The patient identifier for a pseudonym (Unmapped when it cannot)."""
        ...

    def study(self, study_uid: str) -> Study:
        """The study's UID and order numbers (Unmapped when the UID cannot be mapped)."""
        ...

    def uid(self, uid: str) -> str:
        """A series or instance UID as the PACS knows it (Unmapped when it cannot)."""
        ...


class PseudonymsOnly:
    """No re-identification (the default): pseudonyms and pseudonymous UIDs travel as they are."""

    def patient(self, pseudonym: str) -> Patient:
        return Patient(pseudonym, PSEUDONYM_SYSTEM, PSEUDONYM_AUTHORITY, pseudonymous=True)

    def study(self, study_uid: str) -> Study:
        return Study(study_uid)

    def uid(self, uid: str) -> str:
        return uid


class IdentityMap:
    """Re-identification through the hospital's SQLite map (read-only, one query per lookup)."""

    def __init__(self, path: Path, patient_system: str, patient_authority: str) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"identity map {path} does not exist")
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._system, self._authority = patient_system, patient_authority

    def _get(self, kind: Kind, pseudonym: str) -> str | None:
        row = self._db.execute("SELECT original FROM identities WHERE kind = ? AND pseudonym = ?",
                               (kind, pseudonym)).fetchone()
        return None if row is None else str(row[0])

    def _require(self, kind: Kind, pseudonym: str) -> str:
        original = self._get(kind, pseudonym)
        if original is None:
            raise Unmapped(f"identity map has no {kind} entry for this pseudonym")
        return original

    def patient(self, pseudonym: str) -> Patient:
        return Patient(self._require("patient", pseudonym), self._system, self._authority,
                       pseudonymous=False)

    def study(self, study_uid: str) -> Study:
        return Study(self._require("uid", study_uid), self._get("accession", study_uid),
                     self._get("order", study_uid))

    def uid(self, uid: str) -> str:
        return self._require("uid", uid)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @staticmethod
    def record(path: Path, entries: list[tuple[Kind, str, str]]) -> None:
        """Add (kind, pseudonym, original) entries; the edge calls this where it pseudonymises.

        The file is created with mode 0600; an existing entry is replaced (same pseudonym, same
        key: the original cannot differ unless the key changed).
        """
        path.touch(mode=0o600, exist_ok=True)
        db = sqlite3.connect(path)
        try:
            with db:
                db.execute(_SCHEMA)
                db.executemany("INSERT OR REPLACE INTO identities VALUES (?, ?, ?)", entries)
        finally:
            db.close()
