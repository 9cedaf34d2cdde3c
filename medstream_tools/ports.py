"""Free TCP ports on 127.0.0.1 for the servers the tests, the demo and the benchmarks start.

Chosen below Linux's ephemeral range (32768-60999 by default), where the kernel never puts the
local end of an outgoing connection: a port found free there stays free until the test's server
binds it, whereas a port from the ephemeral range (what `bind(0)` gives) can meanwhile become a
Kafka client's local port (seen in CI: a STAT worker's web port, "address already in use").
Each port comes with the next RUN - 1 free as well: a worker with STAT lanes (or `--processes`)
listens on web_port, web_port + 1, ...
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 32768  # above the fixed ports of the stacks (< 10000), below the ephemeral range
RUN = 3  # the routine worker(s) and the STAT worker of one `medstream worker`


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports on 127.0.0.1, each with the RUN - 1 ports after it, that nothing
    listens on right now (their runs do not overlap)."""
    chosen: list[int] = []
    pick = random.SystemRandom()
    for _ in range(1000):
        base = pick.randrange(LOW, HIGH - RUN)
        if all(abs(base - other) >= RUN for other in chosen) and all(
                _bindable(port) for port in range(base, base + RUN)):
            chosen.append(base)
            if len(chosen) == n:
                return chosen
    raise RuntimeError(f"no {n} free runs of {RUN} ports in {LOW}..{HIGH - 1}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 (and the RUN - 1 after it) that nothing listens on right now."""
    return free_ports(1)[0]
