"""Send one HL7 message over MLLP and check its ACK.

Framing: VT message FS CR. The answer must be an ACK whose MSA-2 names our MSH-10: AA/CA
delivered; AE/AR/CE/CR rejected with MSA-3 and ERR text (the record's dead letter). Refused
connection, timeout, closed connection, garbage, or an ACK for another message: TargetUnavailable.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from medstream_delivery.outcomes import Rejected, RejectReason, TargetUnavailable

START, END = b"\x0b", b"\x1c\x0d"
MAX_ACK_BYTES = 1024 * 1024
ACCEPTED = frozenset({"AA", "CA"})
REFUSED = frozenset({"AE", "AR", "CE", "CR"})


@dataclass(frozen=True)
class MllpClient:
    """One connection per message (interface engines accept that; nothing to keep alive)."""

    host: str
    port: int
    timeout_s: float

    def send(self, message: str, control_id: str) -> str:
        """Send `message`; its acknowledgement code on success, else raise (module doc)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
                sock.settimeout(self.timeout_s)
                sock.sendall(START + message.encode("utf-8") + END)
                answer = _read_block(sock)
        except OSError as exc:  # refused, reset, timeout
            raise TargetUnavailable(f"MLLP {type(exc).__name__}") from exc
        return check_ack(answer, control_id)


def _read_block(sock: socket.socket) -> bytes:
    data = b""
    while END not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise TargetUnavailable("MLLP peer closed the connection without an ACK")
        data += chunk
        if len(data) > MAX_ACK_BYTES:
            raise TargetUnavailable("MLLP answer larger than any ACK")
    start = data.find(START)
    if start < 0:
        raise TargetUnavailable("MLLP answer without a start block")
    return data[start + 1:data.index(END)]


def check_ack(block: bytes, control_id: str) -> str:
    """The ACK code of `block` for message `control_id`, else TargetUnavailable / Rejected."""
    try:
        ack = parse_message(block.decode("utf-8", "replace").replace("\n", "\r"),
                            validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
        code, acked = ack.msa.msa_1.value, ack.msa.msa_2.value
    except (HL7apyException, AttributeError, IndexError, ValueError) as exc:
        raise TargetUnavailable("MLLP answer is not an HL7 ACK") from exc
    if acked != control_id:
        raise TargetUnavailable("MLLP ACK names another message control id")
    if code in ACCEPTED:
        return code
    if code in REFUSED:
        raise Rejected(RejectReason.TARGET_REJECTED, f"{code}: {_nak_text(ack)}")
    raise TargetUnavailable("MLLP ACK with an unknown acknowledgement code")


def _nak_text(ack: object) -> str:
    """MSA-3 and the ERR segments' texts of a negative ACK."""
    texts = [ack.msa.msa_3.value] if ack.msa.msa_3.value else []  # type: ignore[attr-defined]
    for segment in ack.children:  # type: ignore[attr-defined]
        if segment.name == "ERR":
            texts.append(segment.to_er7())
    return " | ".join(texts) or "no text"
