"""How a delivery attempt ends, besides success: retry later, or this record's dead letter.

- `TargetUnavailable`: the target did not give an answer about this report (refused connection,
  timeout, TLS failure, 5xx/429, an answer that does not parse, authentication refused). The
  same report is retried with backoff, nothing is committed meanwhile, `/ready` names the target.
- `Rejected`: the report can never be delivered as it is: the target refused it (HTTP 4xx,
  HL7 AE/AR, DIMSE failure), or it cannot be built (identity not mapped, nothing to reference,
  an undecodable record). It goes to the delivery dead-letter topic with the reason and text.
Texts carry no patient identifier from our side; a target's own error text is kept (bounded) in
the dead letter's headers only, never in logs or metric labels.
"""

from __future__ import annotations

from enum import StrEnum

MAX_TEXT = 500


class RejectReason(StrEnum):
    """The `error.type` header of a delivery dead letter and the `reason` metric label."""

    TARGET_REJECTED = "target_rejected"  # the target answered with a permanent refusal
    UNMAPPED_IDENTITY = "unmapped_identity"  # re-identification on, pseudonym not in the map
    UNBUILDABLE = "unbuildable"  # the report lacks what the target's format needs
    UNDECODABLE = "undecodable"  # the record is not a valid study/alert (error.message: why)


class TargetUnavailable(Exception):
    """Retry later: the target gave no answer about this report (text: what happened)."""


class Rejected(Exception):
    """This record's dead letter: never deliverable as it is."""

    def __init__(self, reason: RejectReason, text: str) -> None:
        super().__init__(text[:MAX_TEXT])
        self.reason = reason
