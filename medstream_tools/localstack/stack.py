"""Bring the whole local stack up, down, or report on it (broker, Triton, topics)."""

from __future__ import annotations

import fcntl
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from medstream_tools.localstack import broker, triton
from medstream_tools.localstack.process import Service, StackError, port_open, wait_until
from worker.settings import Settings, host_port
from worker.topics import ensure_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack listens and keeps its state."""

    state_dir: Path
    broker_kind: str
    kafka_host: str
    kafka_port: int
    triton_host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    model_repository: Path = field(default=triton.ROOT / "triton_models")
    broker_timeout_s: float = 30.0
    triton_timeout_s: float = 180.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> StackConfig:
        """Ports and state dir from Settings; keyword overrides (None = keep) win."""
        kafka_host, kafka_port = host_port(settings.kafka_bootstrap.split(",")[0].strip())
        triton_host, http_port = host_port(settings.triton_http_url)
        values: dict[str, object] = {
            "state_dir": Path(settings.state_dir),
            "broker_kind": "tansu",
            "kafka_host": kafka_host,
            "kafka_port": kafka_port,
            "triton_host": triton_host,
            "http_port": http_port,
            "grpc_port": host_port(settings.triton_grpc_url)[1],
            "metrics_port": host_port(settings.triton_metrics_url)[1],
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _refuse_taken(host: str, ports: tuple[int, ...], owner: Service) -> None:
    for port in ports:
        if port_open(host, port):
            raise StackError(
                f"port {host}:{port} is already in use by a process that medstream did not "
                f"start (no live {owner.pid_file}); stop it or choose other ports "
                f"(flags or MEDSTREAM_* addresses)"
            )


def _wait_or_stop(
    svc: Service, pid: int, probe: Callable[[], bool], timeout_s: float, what: str
) -> None:
    """wait_until, stopping the service we just started when it never gets ready."""
    try:
        wait_until(svc, pid, probe, timeout_s, what)
    except StackError:
        svc.stop(timeout_s=5)
        raise


def broker_up(cfg: StackConfig) -> str:
    """Start the broker unless ours already runs; wait until metadata answers."""
    svc = broker.service(cfg.state_dir)

    def probe() -> bool:
        return port_open(cfg.kafka_host, cfg.kafka_port) and broker.metadata_ready(
            cfg.kafka_host, cfg.kafka_port
        )

    pid = svc.pid()
    if pid is not None:
        wait_until(svc, pid, probe, cfg.broker_timeout_s, "metadata readiness")
        return f"broker already running (pid {pid}) on {cfg.kafka_host}:{cfg.kafka_port}"
    _refuse_taken(cfg.kafka_host, (cfg.kafka_port,), svc)
    plan = broker.plan(cfg.broker_kind, cfg.kafka_host, cfg.kafka_port, cfg.state_dir)
    pid = svc.start(plan.argv, plan.env, cwd=cfg.state_dir)
    _wait_or_stop(svc, pid, probe, cfg.broker_timeout_s, "metadata readiness")
    (cfg.state_dir / "broker.kind").write_text(cfg.broker_kind)
    return f"broker {cfg.broker_kind} started (pid {pid}) on {cfg.kafka_host}:{cfg.kafka_port}"


def _load_model(cfg: StackConfig, model: str) -> None:
    url = f"http://{cfg.triton_host}:{cfg.http_port}/v2/repository/models/{model}/load"
    req = urllib.request.Request(url, data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=cfg.triton_timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        raise StackError(f"Triton could not load model {model!r}: {exc.read().decode()}") from exc


def triton_up(cfg: StackConfig, reload: bool = False) -> str:
    """Start Triton unless ours already runs; wait until every model is ready.

    A running server (re)loads the models that are not ready or whose files changed since it
    loaded them (all of them with `reload`), so tests always see the current repository.
    """
    svc = triton.service(cfg.state_dir)
    models = triton.discover_models(cfg.model_repository)
    for model in models:
        triton.check_model(cfg.model_repository / model)
    current = {m: triton.fingerprint(cfg.model_repository / m) for m in models}
    loaded_file = cfg.state_dir / "triton-models.json"

    def probe() -> bool:
        return triton.ready(cfg.triton_host, cfg.http_port, models)

    pid = svc.pid()
    if pid is not None:
        wait_until(svc, pid, lambda: triton.ready(cfg.triton_host, cfg.http_port, ()),
                   cfg.triton_timeout_s, "server readiness")
        loaded = _read_json(loaded_file)
        for model in models:
            stale = loaded.get(model) != current[model]
            if reload or stale or not triton.ready(cfg.triton_host, cfg.http_port, (model,)):
                _load_model(cfg, model)
        wait_until(svc, pid, probe, cfg.triton_timeout_s, "readiness of every model")
        loaded_file.write_text(json.dumps(current))
        return f"triton already running (pid {pid}) on {_triton_where(cfg)}; models {', '.join(models)}"
    _refuse_taken(cfg.triton_host, (cfg.http_port, cfg.grpc_port, cfg.metrics_port), svc)
    plan = triton.plan(cfg.triton_host, cfg.http_port, cfg.grpc_port, cfg.metrics_port,
                       cfg.model_repository, cfg.state_dir)
    pid = svc.start(plan.argv, plan.env, cwd=cfg.state_dir)
    _wait_or_stop(svc, pid, probe, cfg.triton_timeout_s, "readiness of every model")
    loaded_file.write_text(json.dumps(current))
    return f"triton started (pid {pid}) on {_triton_where(cfg)}; models {', '.join(models)}"


def _read_json(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _triton_where(cfg: StackConfig) -> str:
    h = cfg.triton_host
    return f"http {h}:{cfg.http_port}, grpc {h}:{cfg.grpc_port}, metrics {h}:{cfg.metrics_port}"


@contextmanager
def _exclusive(state_dir: Path) -> Iterator[None]:
    """One `up`/`down` at a time per state dir (parallel test sessions, demo, CLI)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(cfg: StackConfig, settings: Settings, reload: bool = False) -> list[str]:
    """Broker, topics, then Triton; returns one line per step. Raises StackError on failure."""
    with _exclusive(cfg.state_dir):
        lines = [broker_up(cfg)]
        created = ensure_topics(settings)
        lines.append(f"topics created: {', '.join(created)}" if created else "topics present")
        lines.append(triton_up(cfg, reload=reload))
    return lines


def down(cfg: StackConfig) -> list[str]:
    """Stop Triton and the broker (whatever of them runs); returns one line per service."""
    lines = []
    with _exclusive(cfg.state_dir):
        for svc in (triton.service(cfg.state_dir), broker.service(cfg.state_dir)):
            lines.append(f"{svc.name}: {'stopped' if svc.stop() else 'not running'}")
    return lines


def status(cfg: StackConfig) -> tuple[bool, list[str]]:
    """(everything up and ready, one line per service)."""
    lines: list[str] = []
    b_svc, t_svc = broker.service(cfg.state_dir), triton.service(cfg.state_dir)
    b_pid = b_svc.pid()
    b_ok = False
    if b_pid is None:
        lines.append(f"broker: not running (log {b_svc.log_file})")
    else:
        try:
            b_ok = broker.metadata_ready(cfg.kafka_host, cfg.kafka_port)
        except Exception:  # noqa: BLE001 - reported as not ready
            b_ok = False
        kind_file = cfg.state_dir / "broker.kind"
        kind = kind_file.read_text().strip() if kind_file.exists() else "?"
        lines.append(f"broker: {kind} pid {b_pid} on {cfg.kafka_host}:{cfg.kafka_port} "
                     f"{'ready' if b_ok else 'NOT READY'}")
    t_pid = t_svc.pid()
    t_ok = False
    if t_pid is None:
        lines.append(f"triton: not running (log {t_svc.log_file})")
    else:
        try:
            index = triton.loaded_models(cfg.triton_host, cfg.http_port)
            t_ok = triton.ready(cfg.triton_host, cfg.http_port, ())
        except Exception:  # noqa: BLE001 - reported as not ready
            index = []
        lines.append(f"triton: pid {t_pid} on {_triton_where(cfg)} "
                     f"{'ready' if t_ok else 'NOT READY'}")
        index = [e for e in index if e.get("state")]  # directories never loaded have none
        for entry in index:
            reason = f" ({entry['reason']})" if entry.get("reason") else ""
            lines.append(f"  model {entry.get('name')} v{entry.get('version', '?')}: "
                         f"{entry.get('state', '?')}{reason}")
        t_ok = t_ok and all(e.get("state") == "READY" for e in index)
    return b_ok and t_ok, lines
