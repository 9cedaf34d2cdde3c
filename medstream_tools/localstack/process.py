"""Background processes of the local stack: pid files, log files, readiness waits.

A service started here runs in its own session (process group) with stdout/stderr going to
`<state_dir>/<name>.log`; `<state_dir>/<name>.pid` records its pid and start time so that a
recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.errors import ConfigurationError

log = logging.getLogger(__name__)


class StackError(ConfigurationError):
    """A local-stack service could not be started or did not become ready."""


@dataclass(frozen=True)
class Service:
    """Where a named background service keeps its pid file and log."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            record = json.loads(self.pid_file.read_text())
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if "started" in record:
            ours = _start_time(pid) == record["started"]
        else:  # pid files written before start times were recorded
            ours = _cmdline_exe(pid) == record.get("exe")
        if ours and self.alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> int:
        """Start `argv` in the background, logging to `log_file`; returns the pid."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv[0]}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        record = {"pid": proc.pid, "started": _start_time(proc.pid), "exe": argv[0]}
        self.pid_file.write_text(json.dumps(record))
        return proc.pid

    def alive(self, pid: int) -> bool:
        """True while `pid` runs (zombies, i.e. exited children, count as dead)."""
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        except ChildProcessError:
            pass
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def stop(self, timeout_s: float = 15.0) -> bool:
        """SIGTERM the process (it stops its children), SIGKILL its group after `timeout_s`.

        Returns False when nothing of ours was running.
        """
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while self.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive(pid):
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing", self.name, pid, timeout_s)
            _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 15) -> str:
        """This run's error lines from the log, then its last `lines` lines ('' without a log)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        run = text.rsplit(_START_MARK, 1)[-1].splitlines()[1:]
        errors = [line for line in run if _ERROR_LINE.search(line) and not _HARMLESS.search(line)]
        tail = "\n".join(run[-lines:])
        if not errors:
            return tail
        return "errors:\n" + "\n".join(errors[-10:]) + "\nlast lines:\n" + tail


_START_MARK = "\n--- "
_ERROR_LINE = re.compile(r"^E\d{4} |ERROR|\berror\b|panicked|Traceback", re.IGNORECASE)
_HARMLESS = re.compile(r"CudaDriverHelper has not been initialized")


def _cmdline_exe(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.split(b"\0", 1)[0].decode(errors="replace") or None


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: (pid, start) names it uniquely."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(
    service: Service,
    pid: int,
    ready: Callable[[], bool],
    timeout_s: float,
    what: str,
) -> None:
    """Poll `ready()` until it is true; raise StackError with the log tail on exit or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not service.alive(pid):
            service.pid_file.unlink(missing_ok=True)
            raise StackError(
                f"{service.name} exited before {what}; log {service.log_file}:\n"
                f"{service.log_tail()}"
            )
        try:
            if ready():
                return
        except Exception as exc:  # noqa: BLE001 - a probe failing means "not ready yet"
            log.debug("%s not ready: %s", service.name, exc)
        time.sleep(0.2)
    raise StackError(
        f"{service.name} did not reach {what} within {timeout_s:.0f} s; "
        f"log {service.log_file}:\n{service.log_tail()}"
    )
