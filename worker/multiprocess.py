"""`medstream worker [--processes N]`: the worker processes of one deployment, one command.

The supervisor starts N routine workers (each a complete worker: its own start-up checks,
faust app, Triton client and decode threads) in one consumer group, with web ports
`MEDSTREAM_WEB_PORT` + 0..N-1 and worker ids `<worker id>-0..N-1`; partitions are shared among
them by the group. With STAT lanes on (docs/lanes.md) it also starts one STAT worker: consumer
group `<app id>-stat`, web port `MEDSTREAM_WEB_PORT` + N, worker id `<worker id>-stat`.
SIGTERM/SIGINT are forwarded to every child. When one child exits (a fail-stop, a start-up
failure), the others are stopped and the supervisor exits with that child's code, so that
the orchestrator restarts the whole set; the group re-delivers whatever was not committed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from worker.lanes import ROUTINE, STAT, STAT_APP_SUFFIX
from worker.settings import Settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0  # grace for the children after the first exits, before SIGKILL
_POLL_S = 0.2


def child_environments(settings: Settings, count: int, base: Mapping[str, str],
                       stat: bool = False) -> list[dict[str, str]]:
    """The environment of each child: its lane, distinct web port and worker id (and the STAT
    worker's own app id), the rest inherited."""
    routine = [{**base, "MEDSTREAM_LANES__PROCESS": ROUTINE,
                "MEDSTREAM_WEB_PORT": str(settings.web_port + index),
                "MEDSTREAM_WORKER_ID": f"{settings.worker_id}-{index}"} for index in range(count)]
    return routine + ([{**base, "MEDSTREAM_LANES__PROCESS": STAT,
                        "MEDSTREAM_APP_ID": settings.app_id + STAT_APP_SUFFIX,
                        "MEDSTREAM_WEB_PORT": str(settings.web_port + count),
                        "MEDSTREAM_WORKER_ID": f"{settings.worker_id}-{STAT}"}] if stat else [])


def child_command(log_level: str) -> list[str]:
    """One single-process worker."""
    return [sys.executable, "-m", "worker.cli", "--log-level", log_level, "worker"]


def _stop(children: Sequence[subprocess.Popen], sig: int) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(sig)


def supervise(settings: Settings, count: int, log_level: str = "INFO", stat: bool = False) -> int:
    """Run `count` routine workers (and the STAT worker when `stat`) until one exits or a stop
    signal arrives; their exit code."""
    last = settings.web_port + count - (0 if stat else 1)
    if last > 65535:
        log.error("web ports %d..%d do not fit", settings.web_port, last)
        return 2
    children = [subprocess.Popen(child_command(log_level), env=env)
                for env in child_environments(settings, count, os.environ, stat)]
    log.info("started %d routine worker process(es)%s (web ports %d..%d)", count,
             " and the STAT worker" if stat else "", settings.web_port, last)
    stopping: list[int] = []

    def forward(signum: int, frame: object) -> None:
        stopping.append(signum)
        _stop(children, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    while all(child.poll() is None for child in children):
        time.sleep(_POLL_S)
    first = next(child for child in children if child.poll() is not None)
    if not stopping:
        log.error("worker process %d exited with %s; stopping the others", first.pid,
                  first.returncode)
        _stop(children, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return first.returncode if not stopping else max(c.returncode or 0 for c in children)
