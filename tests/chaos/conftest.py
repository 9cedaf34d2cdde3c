"""Fixtures of the chaos suite: its own Tansu and Triton, which the scenarios kill at will.

The services are started with the local-stack modules (`medstream_tools.localstack`) on the
ports of medstream_tools/soak/stack.py (MEDSTREAM_CHAOS_*) and stopped at the end of the session.
A stack that does not come up fails the session: never a skip. Before it starts, the session
claims its ports (processes.py): leftovers of a killed session in the same state dir are
killed, any other process on a chaos port fails the session with its pid and command.
SIGTERM (a CI timeout, `kill`) ends the session like Ctrl-C, so the teardown still stops
everything it started.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from types import FrameType

import pytest
from chaos_stack import SESSION_PORTS, STATE_DIR, Scenario, make_scenario, model_repository
from processes import claim_ports

from medstream_tools.localstack.process import StackError
from medstream_tools.localstack.stack import StackConfig, broker_up, down, triton_up
from medstream_tools.soak.stack import private_stack


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def chaos_stack() -> Iterator[StackConfig]:
    """Tansu (memory storage) + Triton on the chaos ports, stopped after the session."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    killed, foreign = claim_ports(SESSION_PORTS, STATE_DIR)
    for line in killed:
        print(f"[chaos] killed a leftover of an earlier session: {line}")
    if foreign:
        pytest.fail(f"chaos ports taken by processes that this state dir ({STATE_DIR}) did not "
                    "start; stop them or choose other MEDSTREAM_CHAOS_* ports:\n"
                    + "\n".join(foreign), pytrace=False)
    cfg = private_stack(STATE_DIR, model_repository(STATE_DIR))
    try:
        broker_up(cfg)
        triton_up(cfg)
    except StackError as exc:
        down(cfg)
        pytest.fail(f"the chaos stack did not come up: {exc}", pytrace=False)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield cfg
    finally:
        signal.signal(signal.SIGTERM, previous)
        down(cfg)


@pytest.fixture
def scenario(chaos_stack: StackConfig) -> Iterator[Callable[..., Scenario]]:
    """`scenario("name", **MEDSTREAM_overrides)` on the chaos stack's broker."""
    made: list[Scenario] = []

    def create(name: str, **env: str) -> Scenario:
        broker_up(chaos_stack)  # each scenario starts on a healthy stack (no-ops when up)
        triton_up(chaos_stack)
        made.append(make_scenario(name, f"127.0.0.1:{chaos_stack.kafka_port}", chaos_stack, **env))
        return made[-1]

    yield create
    for sc in made:
        sc.stop_workers()
