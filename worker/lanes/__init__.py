"""STAT lanes (docs/lanes.md): urgent events travel on their own topics, served by their own
worker process, with Triton request priority; routine work keeps a guaranteed share.

Kafka has no message priority, so each kind with a `stat_topic` has a second topic. `medstream
worker` runs the routine worker(s) and one STAT worker (its own faust app id and consumer
group, `<app id>-stat`) as child processes (worker/multiprocess.py), so a STAT record never
waits in the routine consumer's fetches or delivery loop. The STAT worker caps its duty cycle
(worker/lanes/stream.py) so that routine is never starved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.contracts.lane import LANES, ROUTINE, STAT

if TYPE_CHECKING:
    from worker.settings import Settings

__all__ = ["LANES", "ROUTINE", "STAT", "STAT_APP_SUFFIX", "TRITON_PRIORITY", "process_lane",
           "request_priority"]

#: Triton request priority per lane (1 is the highest; the models declare priority_levels: 2)
TRITON_PRIORITY = {STAT: 1, ROUTINE: 2}
STAT_APP_SUFFIX = "-stat"  # the STAT worker's faust app id (consumer group): <app id>-stat


def process_lane(settings: Settings) -> str:
    """The lane this process serves: STAT only when it is the STAT worker."""
    return STAT if settings.lanes.enabled and settings.lanes.process == STAT else ROUTINE


def request_priority(settings: Settings) -> int:
    """The Triton priority of this process' requests (0: the model's default, lanes off)."""
    return TRITON_PRIORITY[process_lane(settings)] if settings.lanes.enabled else 0
