"""medstream_tools.ports: free ports for the servers tests, the demo and the benchmarks start."""

from __future__ import annotations

import socket
from pathlib import Path

from medstream_tools.ports import HIGH, LOW, RUN, free_port, free_ports


def test_ports_are_outside_the_ephemeral_range_with_their_run_free() -> None:
    # below net.ipv4.ip_local_port_range, so no outgoing connection takes one before its server
    # binds it; each with the ports of a lanes worker's STAT process (web_port + 1, ...) free
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = free_ports(4)
    assert len(set(ports)) == 4 and HIGH <= low
    assert all(LOW <= p and p + RUN <= HIGH for p in ports)
    assert all(abs(a - b) >= RUN for a in ports for b in ports if a != b)  # runs do not overlap
    for port in ports:
        for taken in range(port, port + RUN):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", taken))  # would raise were it taken


def test_a_port_in_use_is_never_returned() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        held = sock.getsockname()[1]
        assert all(not (p <= held < p + RUN) for p in free_ports(200))
