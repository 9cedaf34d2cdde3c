"""Keyed state over a stream, at least once: the engine behind study results and alerts.

A `Machine` folds the events of an internal topic (keyed by study or patient, so one key lives
on one partition) into per-key JSON state held in a faust table, and turns timer records
(`medstream.tick/v1`, appended to each assigned partition by the worker) into time-driven
steps. Per batch from `noack_take`:

1. apply every event and tick in partition order (pure transitions, no I/O);
2. send the outputs (results, alerts) and await every delivery;
3. write each changed key's state to the table's changelog partition (the event's partition,
   so the state moves with the partition on a rebalance) and await every delivery;
4. only then ack the inputs.

A crash anywhere re-delivers the batch: the state restored from the changelog plus the replay
give the same state, and an output may be repeated under the same idempotent key (outputs go
out before the state that records them, never after). Any unexpected error fail-stops the
process without acking (worker/serving.py). faust's own `Table.__setitem__` is not used: it
needs `current_event()`, which `noack_take` does not set, and it does not let us await the
changelog delivery before the ack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.contracts import is_tick
from worker.errors import PoisonMessage
from worker.serving import fail_stop

log = logging.getLogger(__name__)

State = dict[str, Any]


@dataclass
class Step:
    """What one event or tick did: the key's new state (None: drop it), whether it changed,
    and the (key, value) records to send."""

    state: State | None
    changed: bool
    outputs: list[tuple[bytes, bytes]] = field(default_factory=list)


class Machine(Protocol):
    """One kind of keyed state (studies, alerts)."""

    name: str  # the `table` metric label

    def apply(self, state: State | None, value: bytes, partition: int, now: float) -> Step:
        """Fold one event (raises PoisonMessage when the value is not one)."""
        ...

    def tick(self, state: State, now: float, active_since: float) -> Step:
        """Time-driven step of one key (answer, expire)."""
        ...

    def observe(self, states: Iterable[State]) -> None:
        """Report gauges over the states of this worker's partitions."""
        ...


class Changelog(Protocol):
    """The table's changelog topic: `await send(...)` returns a delivery future."""

    async def send(self, *, key: str, value: State | None, partition: int) -> Awaitable[Any]: ...


class Output(Protocol):
    """The topic the machine's records go to."""

    async def send(self, *, key: bytes, value: bytes) -> Awaitable[Any]: ...


class KeyedState:
    """Serves batches of one internal topic against `store` (the table's data)."""

    def __init__(self, machine: Machine, store: MutableMapping[str, State], output: Output,
                 changelog: Changelog, clock: Callable[[], float] = time.time) -> None:
        self.machine = machine
        self._store = store
        self._output = output
        self._changelog = changelog
        self._clock = clock
        self.active_since: dict[int, float] = {}  # partition -> first batch served since assigned
        self.assigned: set[int] = set()

    def assign(self, partitions: Iterable[int]) -> None:
        """After a rebalance: drop the keys of partitions no longer assigned here (the changelog
        restores them wherever they are assigned; faust keeps recovering retained partitions
        from where it was) and give every partition a fresh quiet clock."""
        self.assigned = set(partitions)
        self.active_since.clear()
        for key in [k for k, s in self._store.items() if s.get("partition") not in self.assigned]:
            del self._store[key]

    async def serve(self, events: Sequence[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """One batch: apply, deliver outputs, deliver state, then ack (module docstring)."""
        now = self._clock()
        changed: dict[str, int] = {}
        outputs: list[tuple[bytes, bytes]] = []
        for event in events:
            msg = event.message
            since = self.active_since.setdefault(msg.partition, now)
            if is_tick(msg.value):
                steps = [(k, self.machine.tick(s, now, since)) for k, s in self._store.items()
                         if s.get("partition") == msg.partition]
            else:
                key = (msg.key or b"").decode("utf-8", "replace")
                try:
                    steps = [(key, self.machine.apply(self._store.get(key), msg.value,
                                                      msg.partition, now))]
                except PoisonMessage as exc:  # counted by the machine
                    log.warning("dropped a malformed %s state event: %s", self.machine.name, exc)
                    continue
            for key, step in steps:
                outputs += step.outputs
                if step.state is None:
                    if self._store.pop(key, None) is not None:
                        changed[key] = msg.partition
                elif step.changed:
                    self._store[key] = step.state
                    changed[key] = msg.partition
        await asyncio.gather(*[await self._output.send(key=k, value=v) for k, v in outputs])
        await asyncio.gather(*[await self._changelog.send(key=k, value=self._store.get(k),
                                                          partition=p)
                               for k, p in changed.items()])
        for event in events:
            await ack(event)
        if any(is_tick(e.message.value) for e in events):
            self.machine.observe(s for s in self._store.values()
                                 if s.get("partition") in self.assigned)


async def run_batches(stream: Any, serve: Callable[[Sequence[Any], Callable[[Any], Awaitable[Any]]],
                                                   Awaitable[None]],
                      *, max_batch: int, within: float, name: str,
                      on_fatal: Callable[[], None] = fail_stop) -> None:
    """Agent body: batches from `noack_take` served one at a time; fail-stop on anything
    unexpected, without acking (re-raising into faust would auto-ack on its restart)."""
    async for events in stream.noack_take(max_batch, within=within):
        try:
            await serve(events, stream.ack)
        except Exception:
            log.critical("unexpected failure serving a batch of %d %s events; exiting without "
                         "acking so that they are re-delivered", len(events), name, exc_info=True)
            on_fatal()
            return
