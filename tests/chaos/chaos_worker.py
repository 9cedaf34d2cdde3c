"""A `medstream worker` subprocess that chaos scenarios start, probe, SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from chaos_check import wait_for

from medstream_tools.top.promstats import parse_metrics, sum_by

ROOT = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """(status, body); raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class WorkerProcess:
    """One worker: its own web port, state dir and log; `env` holds the shared MEDSTREAM_*."""

    def __init__(self, name: str, env: dict[str, str], port: int, state_dir: Path) -> None:
        self.name, self.port, self.state_dir = name, port, state_dir / name
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**env, "MEDSTREAM_WEB_PORT": str(port), "MEDSTREAM_WORKER_ID": name,
                    "MEDSTREAM_STATE_DIR": str(self.state_dir)}
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_file(self) -> Path:
        return self.state_dir / "worker.log"

    def start(self) -> WorkerProcess:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "--log-level", "WARNING", "worker"],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        return self

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:]

    def ready_status(self) -> int | None:
        """HTTP status of /ready (None while nothing answers)."""
        try:
            return http_get(self.url + "/ready")[0]
        except OSError:
            return None

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log_tail()}")
            return self.ready_status() == 200

        wait_for(f"worker {self.name} /ready", ready, timeout_s)

    def metrics(self) -> dict:
        return parse_metrics(http_get(self.url + "/metrics")[1].decode(), time.monotonic()).samples

    def consumed(self) -> float:
        return sum(sum_by(self.metrics(), "medstream_messages_consumed", "kind").values())

    def kill(self) -> None:
        """SIGKILL, no goodbye (the process group: nothing survives)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 30 s; a no-op when not running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_mib(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/statm").read_text().split()
        return int(fields[1]) * PAGE / 2**20

    def cpu_s(self) -> float:
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / TICKS
