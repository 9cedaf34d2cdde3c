"""The demo's `medstream worker`, run as deployed by default (STAT lanes on, docs/lanes.md).

The command is a supervisor of child processes (worker/multiprocess.py): one routine worker on
the web port P and the STAT worker (its own consumer group) on P + 1. `start` waits until both
answer /ready; `stop` sends SIGTERM to the supervisor, which forwards it to both workers, and
then checks that no process of the set is left (they share the supervisor's process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from medstream_tools.localstack.process import StackError
from medstream_tools.soak.worker import http_get
from worker.lanes import ROUTINE, STAT
from worker.settings import Settings

ROUTINE_PROCESSES = 1  # `medstream worker`'s default --processes
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 45.0  # more than the supervisor's own 30-s grace before it SIGKILLs a child
GONE_TIMEOUT_S = 5.0  # for the children to exit once the supervisor has


def web_ports(settings: Settings) -> dict[str, int]:
    """The web port of each lane's worker (the supervisor's numbering)."""
    return {ROUTINE: settings.web_port, STAT: settings.web_port + ROUTINE_PROCESSES}


def _ready(host: str, port: int) -> bool:
    try:
        return http_get(f"http://{host}:{port}/ready", timeout_s=2)[0] == 200
    except OSError:
        return False


def start(settings: Settings, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `medstream worker` with `env` in a process group of its own; waits until the
    routine and the STAT worker are both ready. On StackError (not ready, exited) or an
    interrupt meanwhile, everything is stopped first."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "worker"], env=dict(env),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, settings, log_path)
    except BaseException:  # Ctrl-C too: the worker's own group does not get the terminal's
        stop(proc)
        raise
    return proc


def _wait_ready(proc: subprocess.Popen[bytes], settings: Settings, log_path: Path) -> None:
    pending = web_ports(settings)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"the worker exited with {proc.returncode}; see {log_path}")
        pending = {lane: port for lane, port in pending.items()
                   if not _ready(settings.web_host, port)}
        time.sleep(0.3)
    if pending:
        raise StackError(f"the {' and '.join(pending)} worker(s) were not ready within "
                         f"{READY_TIMEOUT_S:.0f}s; see {log_path}")


def group_members(group: int) -> list[int]:
    """The running processes of process group `group` (zombies are gone: only a parent's wait
    is missing)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left to kill
        os.killpg(group, signal.SIGKILL)


def _wait_gone(group: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not group_members(group)


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, bool]:
    """SIGTERM to the supervisor; (its exit code, whether the set stopped by itself).

    A supervisor that does not exit within STOP_TIMEOUT_S, and anything of its process group
    still running after it exited, is SIGKILLed (and the second value is False).
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_TIMEOUT_S)
        clean = True
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        code, clean = proc.wait(timeout=30), False
    if not _wait_gone(proc.pid, GONE_TIMEOUT_S):
        _kill_group(proc.pid)
        _wait_gone(proc.pid, GONE_TIMEOUT_S)
        clean = False
    return code, clean
