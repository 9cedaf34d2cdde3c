"""A bounded stop: a worker still stopping `stop_deadline_s` after its stop began exits at once.

With its broker gone, faust and aiokafka can wait out their own timeouts (a consumer thread
that never reports its shutdown: mode's 60 s). Nothing can be committed then anyway, and
nothing needs to be: offsets only ever cover inputs whose outputs were delivered, so ending the
process is as safe as a SIGKILL (the uncommitted tail is delivered again after a restart).
The deadline runs on a thread, so it fires even when the event loop is stuck.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import faust

from worker.serving import fail_stop

log = logging.getLogger(__name__)

#: The exit code of a stop cut short: a process ended by SIGTERM without handling it (128 + 15).
STOP_DEADLINE_EXIT_CODE = 128 + signal.SIGTERM


class StopDeadline:
    """Once armed, ends the process `deadline_s` later unless it has exited by then."""

    def __init__(self, deadline_s: float, exit_now: Callable[[int], Any] = fail_stop) -> None:
        self.deadline_s = deadline_s
        self._exit_now = exit_now
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        """Start the countdown (once; later calls keep the first)."""
        if self._timer is None:
            self._timer = threading.Timer(self.deadline_s, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        log.error("the worker was still stopping %.1f s after its stop began "
                  "(MEDSTREAM_STOP_DEADLINE_S; broker or Triton not answering): exiting now "
                  "with %d; nothing uncommitted is lost, it is delivered again after a restart",
                  self.deadline_s, STOP_DEADLINE_EXIT_CODE)
        self._exit_now(STOP_DEADLINE_EXIT_CODE)


class BoundedStopWorker(faust.Worker):
    """faust's Worker whose stop (a signal, or a crash) is bounded by a StopDeadline."""

    def __init__(self, *args: Any, stop_deadline: StopDeadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_deadline = stop_deadline

    async def on_stop(self) -> None:
        """mode's hook at the start of every stop: the countdown begins."""
        self.stop_deadline.arm()
        await super().on_stop()
