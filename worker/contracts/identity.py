"""Identity on the wire: producer pseudonyms and input digests.

`PSEUDONYM` is the form of a patient pseudonym made by the producers
(`producers.deid.pseudonym.Pseudonymizer.patient`: "PSN-" + 32 lower-case hex characters); the
worker refuses other patient ids while `MEDSTREAM_REQUIRE_DEIDENTIFIED` is on. `input_digest`
names an input's exact bytes, so that a consumer can tell a re-delivery (same event id, same
digest) from a re-used event id (same event id, another digest).
"""

from __future__ import annotations

import hashlib
import re

PSEUDONYM = re.compile(r"PSN-[0-9a-f]{32}")
DIGEST_PREFIX = "sha256:"


def is_pseudonym(patient_id: str) -> bool:
    """True when `patient_id` has the form of a producer pseudonym."""
    return PSEUDONYM.fullmatch(patient_id) is not None


def input_digest(value: bytes) -> str:
    """"sha256:<64 hex>" of an input message value exactly as consumed."""
    return DIGEST_PREFIX + hashlib.sha256(value).hexdigest()
