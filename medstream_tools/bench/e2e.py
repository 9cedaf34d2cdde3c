"""medstream end to end: the real worker as a subprocess, fed and observed through Kafka.

Phases over one worker process: drain a pre-filled backlog (throughput), paced open-loop load
(latency), and a 300-slice CT series sent as one study (clinical framing).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

import worker
from medstream_tools.bench import load, procstat, stats
from medstream_tools.bench.corpus import Message
from medstream_tools.ports import free_port
from medstream_tools.soak.fixture_scans import fixture_rules
from worker.settings import Settings

_STOP_TIMEOUT_S = 20.0
ROOT = Path(worker.__file__).resolve().parents[1]


@dataclass(frozen=True)
class Topics:
    """The fresh topics of one benchmark phase."""

    scans: str
    vitals: str
    predictions: str
    deadletter: str

    @classmethod
    def fresh(cls, prefix: str) -> Topics:
        """Topic names `<prefix>-scans`, `<prefix>-vitals`, ..."""
        return cls(*(f"{prefix}-{name}" for name in ("scans", "vitals", "predictions", "deadletter")))

    def names(self) -> list[str]:
        """All four names."""
        return [self.scans, self.vitals, self.predictions, self.deadletter]


def faust_topics(app_id: str) -> list[str]:
    """Internal topics faust creates for an app (deleted with the phase's own topics)."""
    return [f"{app_id}-__assignor-__leader"]


def scrape(url: str) -> dict[str, float]:
    """Prometheus text exposition -> {'name{k="v",..}': value} (empty dict when unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


@dataclass
class WorkerProcess:
    """`medstream worker` in a subprocess, pointed at the phase's topics and consumer group."""

    settings: Settings
    topics: Topics
    app_id: str
    log_path: Path
    command: tuple[str, ...] = (sys.executable, "-m", "worker.cli", "worker")
    web_port: int = field(default_factory=free_port)  # never clashes with a running worker
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the workload's model
    processes: int = 1  # `medstream worker --processes N` (web ports web_port..+N-1)
    rules: Path | None = None  # routing rules; default: PA chest radiographs -> scan.model
    proc: subprocess.Popen | None = None
    samples: list[tuple[float, procstat.ProcSample, procstat.ProcSample | None]] = field(
        default_factory=list)

    @property
    def metrics_url(self) -> str:
        """The worker's Prometheus endpoint."""
        return f"http://{self.settings.web_host}:{self.web_port}/metrics"

    def start(self) -> None:
        """Launch the worker with the phase's environment; its output goes to `log_path`."""
        env = dict(os.environ)
        env.update({
            "MEDSTREAM_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "MEDSTREAM_TRITON_GRPC_URL": self.settings.triton_grpc_url,
            "MEDSTREAM_TRITON_HTTP_URL": self.settings.triton_http_url,
            "MEDSTREAM_WEB_PORT": str(self.web_port),
            "MEDSTREAM_STATE_DIR": str(self.settings.state_dir),
            "MEDSTREAM_APP_ID": self.app_id,
            "MEDSTREAM_TOPIC_SCANS": self.topics.scans,
            "MEDSTREAM_TOPIC_VITALS": self.topics.vitals,
            "MEDSTREAM_TOPIC_PREDICTIONS": self.topics.predictions,
            "MEDSTREAM_TOPIC_DEADLETTER": self.topics.deadletter,
            "MEDSTREAM_LANES__ENABLED": "false",  # the routine path; `bench --stat` turns them on
            **self.extra_env,
        })
        command = [*self.command, *(["--processes", str(self.processes)]
                                    if self.processes > 1 else [])]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # the corpus is stamped as PA chest radiographs (corpus.py): by default route them to
        # the scan model
        env["MEDSTREAM_ROUTING__RULES"] = str(self.rules or fixture_rules(
            self.log_path.with_name("bench-routing.yaml"), self.settings.scan.model))
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        """Raise with the worker's log tail if it has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n" + "\n".join(tail))

    def sample(self, triton_pid: int | None) -> None:
        """Record (time, worker(s) CPU/RSS, Triton + backend stubs CPU/RSS) now."""
        if self.proc is None:
            raise RuntimeError("the worker was not started")
        worker = procstat.sample_tree(self.proc.pid)  # with --processes: the supervisor's set
        server = procstat.sample_tree(triton_pid) if triton_pid else None
        self.samples.append((time.time(), worker, server))

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


async def _sampler(worker: WorkerProcess, triton_pid: int | None, period_s: float) -> None:
    while True:
        worker.check_alive()
        worker.sample(triton_pid)
        await asyncio.sleep(period_s)


def cpu_per_1k(worker: WorkerProcess, start: float, end: float, messages: int) -> dict:
    """Worker and Triton CPU seconds per 1,000 messages over [start, end] (None: not sampled),
    and the share of their runnable time spent waiting for a CPU (neighbours' load)."""
    def used(series: list[tuple[float, float]]) -> float | None:
        if not series:
            return None
        return stats.interpolate(series, end) - stats.interpolate(series, start)

    own = used([(t, w.cpu_s) for t, w, _ in worker.samples])
    server = used([(t, s.cpu_s) for t, _, s in worker.samples if s is not None])
    wait = used([(t, w.runq_wait_s + (s.runq_wait_s if s else 0.0))
                 for t, w, s in worker.samples])
    busy = (own or 0.0) + (server or 0.0)
    return {"worker_cpu_s_per_1k": None if own is None else own * 1e3 / messages,
            "triton_cpu_s_per_1k": None if server is None else server * 1e3 / messages,
            "cpu_wait_share": wait / (wait + busy) if wait is not None and wait + busy > 0 else None}


def peak_rss_bytes(worker: WorkerProcess) -> int:
    """The worker's peak resident set (VmHWM) over its samples."""
    return max((w.peak_rss_bytes for _, w, _ in worker.samples), default=0)


@dataclass
class Session:
    """One running worker plus a collector of its predictions and a /proc sampler."""

    settings: Settings
    worker: WorkerProcess
    collector: load.Collector
    triton_pid: int | None
    _sampler: asyncio.Task | None = None

    async def __aenter__(self) -> Self:
        await self.collector.start()
        self.worker.start()
        self.collector.watch = self.worker.check_alive  # a dead worker ends every wait
        self._sampler = asyncio.create_task(_sampler(self.worker, self.triton_pid, 0.25))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        await self.collector.stop()
        self.worker.stop()

    async def wait(self, ids: Sequence[str], timeout_s: float) -> None:
        """Wait for predictions of `ids`; raise if the worker died or the timeout passed."""
        missing = await self.collector.wait_for(ids, timeout_s)
        if self._sampler is not None and self._sampler.done():
            self._sampler.result()
        if missing > self.collector.deadletters:
            raise TimeoutError(f"{missing} of {len(ids)} predictions missing after {timeout_s:.0f} s")

    def batching(self, before: dict[str, float], after: dict[str, float], model: str) -> dict:
        """Mean records per inference request and mean request time (ms) between two scrapes."""
        labels = f'model="{model}"'
        seconds = stats.histogram_mean(before, after, "medstream_inference_seconds", labels)
        return {"mean_batch": stats.histogram_mean(before, after, "medstream_batch_size", labels),
                "mean_inference_ms": None if seconds is None else seconds * 1e3}


async def drain(session: Session, messages: Sequence[Message], model: str, window_s: float,
                startup_timeout_s: float) -> dict:
    """Steady-state throughput over a backlog produced before the worker started.

    Counts predictions for `window_s` after the first one (or until the backlog is served);
    what is left of the backlog is abandoned with the worker.
    """
    if not await session.collector.wait_count(1, startup_timeout_s):
        session.worker.check_alive()
        raise TimeoutError(f"no prediction within {startup_timeout_s:.0f} s of the worker start")
    await session.collector.wait_for([m.event_id for m in messages], window_s)
    session.worker.sample(session.triton_pid)
    produced = [a.produced_at for a in list(session.collector.arrivals.values())]
    rate = stats.drain_rate(produced)
    after = scrape(session.worker.metrics_url)
    return {**rate, **cpu_per_1k(session.worker, rate["start"], rate["end"], rate["messages"]),
            **session.batching({}, after, model), "backlog": len(messages),
            "served": len(produced), "deadletters": session.collector.deadletters}


async def paced(session: Session, topic: str, messages: Sequence[Message], rate: float,
                model: str, timeout_s: float) -> dict:
    """Open-loop load at `rate` msg/s; latency from intended send time to prediction received."""
    before = scrape(session.worker.metrics_url)
    intended = await load.paced(session.settings.kafka_bootstrap, topic, messages, rate,
                                session.settings.max_message_bytes)
    await session.wait(list(intended), timeout_s)
    arrivals = session.collector.arrivals
    received = stats.latencies_ms(intended, {i: a.received_at for i, a in arrivals.items()})
    produced = stats.latencies_ms(intended, {i: a.produced_at for i, a in arrivals.items()})
    return {"rate_msg_per_s": rate, "messages": len(messages),
            "latency_ms": stats.percentiles(received),
            "latency_to_produce_ms": stats.percentiles(produced),
            **session.batching(before, scrape(session.worker.metrics_url), model)}


async def ct_series(session: Session, topic: str, slices: Sequence[Message], timeout_s: float) -> dict:
    """A whole CT series (one study key) sent as fast as the broker takes it."""
    t_first = time.time()
    t_last_slice = await load.prefill(session.settings.kafka_bootstrap, topic, slices,
                                      session.settings.max_message_bytes)
    ids = [m.event_id for m in slices]
    await session.wait(ids, timeout_s)
    arrivals = [session.collector.arrivals[i] for i in ids if i in session.collector.arrivals]
    last_produced = max(a.produced_at for a in arrivals)
    last_received = max(a.received_at for a in arrivals)
    return {"slices": len(slices), "send_s": t_last_slice - t_first,
            "last_slice_to_last_prediction_s": last_received - t_last_slice,
            "last_slice_to_last_prediction_produced_s": last_produced - t_last_slice,
            "first_slice_to_last_prediction_s": last_received - t_first}
