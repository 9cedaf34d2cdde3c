"""A `medstream worker` subprocess that the soak, the chaos scenarios and the integration tests
start, probe, SIGKILL and restart: its own web port, state dir and log (`worker.log`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import worker
from medstream_tools.soak.waiting import wait_for
from medstream_tools.top.promstats import parse_metrics, sum_by

ROOT = Path(worker.__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """(status, body); HTTP errors are answers; raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class WorkerProcess:
    """One worker. `env`: its MEDSTREAM_* settings (the caller's MEDSTREAM_* are not inherited);
    state under `state_dir/name` (`state_dir` itself when `name` is empty); `name` is also the
    worker id. `log_level`: the CLI's --log-level (None: its default)."""

    def __init__(self, name: str, env: Mapping[str, str], port: int, state_dir: Path, *,
                 log_level: str | None = "WARNING") -> None:
        self.name, self.web_port, self.log_level = name, port, log_level
        self.state_dir = state_dir / name if name else state_dir
        self.overrides = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "worker.log"

    def env(self) -> dict[str, str]:
        """The subprocess' whole environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSTREAM_")}
        env.update({"PYTHONPATH": str(ROOT), "MEDSTREAM_WEB_PORT": str(self.web_port),
                    "MEDSTREAM_STATE_DIR": str(self.state_dir)})
        if self.name:
            env["MEDSTREAM_WORKER_ID"] = self.name
        return {**env, **self.overrides}

    def argv(self) -> list[str]:
        """The worker's command line."""
        level = ["--log-level", self.log_level] if self.log_level else []
        return [sys.executable, "-m", "worker.cli", *level, "worker"]

    def start(self) -> WorkerProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(self.argv(), cwd=ROOT, env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        return self

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def assert_alive(self) -> None:
        """AssertionError with the log tail unless the process runs."""
        if self.proc is None:
            raise AssertionError(f"worker {self.name} was not started")
        if self.proc.poll() is not None:
            raise AssertionError(
                f"worker {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_until(self, what: str, check: Callable[[], Any], timeout_s: float = 120.0,
                   every_s: float = 0.2) -> Any:
        """`wait_for` that also fails (with the log tail) as soon as the worker died."""

        def alive_and_checked() -> Any:
            self.assert_alive()
            return check()

        return wait_for(what, alive_and_checked, timeout_s, every_s, detail=self.log_tail)

    def get(self, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        """(status, body) of GET `path` on the worker's web server."""
        return http_get(self.url + path, timeout_s)

    def ready_status(self) -> int | None:
        """HTTP status of /ready (None while nothing answers)."""
        try:
            return http_get(self.url + "/ready")[0]
        except OSError:
            return None

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        self.wait_until(f"worker {self.name} /ready", lambda: self.ready_status() == 200, timeout_s)

    def metrics(self) -> dict:
        """The /metrics samples (medstream_tools.top.promstats)."""
        return parse_metrics(http_get(self.url + "/metrics")[1].decode(), time.monotonic()).samples

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample from the worker's /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        body = self.get("/metrics")[1].decode()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(
                        sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(sample.value)
        return 0.0

    def consumed(self) -> float:
        return sum(sum_by(self.metrics(), "medstream_messages_consumed", "kind").values())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """`sig` (default SIGKILL: no goodbye) to the process group; waits for the exit."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

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
