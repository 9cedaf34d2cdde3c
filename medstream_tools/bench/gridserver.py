"""A private Triton for config experiments: own ports, own temporary model repository.

The shared Triton serves the repository it was started on and must not be restarted; to try a
`config.pbtxt` variant (another `max_batch_size`) the grid starts a tritonserver of its own,
the same binary, backends and flags as `medstream local up` (medstream_tools/localstack),
with no model loaded at start (explicit model control), and loads one variant at a time
through the load API. A variant is a directory `<model>_mbs<N>` whose `config.pbtxt` is the
built model's with the name and `max_batch_size` replaced, and whose `1/model.onnx` links to
the built ONNX file (never copied, never modified).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from medstream_tools.localstack import triton
from medstream_tools.localstack.process import Service, wait_until
from medstream_tools.ports import free_ports

HOST = "127.0.0.1"
LOAD_TIMEOUT_S = 300.0


def variant_name(model: str, max_batch_size: int) -> str:
    """The name a variant is served under."""
    return f"{model}_mbs{max_batch_size}"


def variant_config(config: str, name: str, max_batch_size: int) -> str:
    """`config` (config.pbtxt text) renamed to `name`, with `max_batch_size` replaced."""
    renamed, names = re.subn(r'^name:\s*"[^"]*"', f'name: "{name}"', config, count=1,
                             flags=re.MULTILINE)
    out, sizes = re.subn(r"^max_batch_size:\s*\d+", f"max_batch_size: {max_batch_size}",
                         renamed, count=1, flags=re.MULTILINE)
    if names != 1 or sizes != 1:
        raise ValueError("config.pbtxt has no top-level name / max_batch_size line")
    return out


def write_variant(repository: Path, source: Path, max_batch_size: int) -> str:
    """Add the variant of the built model directory `source` to `repository`; its name."""
    name = variant_name(source.name, max_batch_size)
    target = repository / name
    (target / "1").mkdir(parents=True, exist_ok=True)
    config = variant_config((source / "config.pbtxt").read_text(), name, max_batch_size)
    (target / "config.pbtxt").write_text(config)
    link = target / "1" / "model.onnx"
    link.unlink(missing_ok=True)
    link.symlink_to((source / "1" / "model.onnx").resolve())
    return name


@dataclass(frozen=True)
class GridServer:
    """A running private Triton: where it listens, its pid (for /proc CPU) and repository."""

    pid: int
    http_port: int
    grpc_port: int
    metrics_port: int
    repository: Path

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def _post(self, path: str) -> None:
        request = urllib.request.Request(f"http://{HOST}:{self.http_port}/v2/repository/{path}",
                                         data=json.dumps({}).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=LOAD_TIMEOUT_S):
            pass

    def load(self, name: str) -> None:
        """Load a variant of the repository (returns once it is ready)."""
        self._post(f"models/{name}/load")

    def unload(self, name: str) -> None:
        """Unload it again (its backend stub exits)."""
        self._post(f"models/{name}/unload")


@contextmanager
def grid_server(sources: list[Path], max_batch_sizes: tuple[int, ...],
                state_dir: Path | None = None) -> Iterator[GridServer]:
    """Write every variant of the built model directories `sources` into a temporary
    repository, start a private tritonserver on free ports with none of them loaded; stop it
    and remove the repository on exit. Its log is `<state_dir>/triton-grid.log`."""
    work = Path(tempfile.mkdtemp(prefix="medstream-grid-"))
    repository = work / "models"
    for source in sources:
        for size in max_batch_sizes:
            write_variant(repository, source, size)
    ports = free_ports(3)
    plan = triton.plan(HOST, *ports, repository, work)  # validates every variant
    argv = [a for a in plan.argv if not a.startswith("--load-model=")]  # loaded on demand
    service = Service("triton-grid", state_dir or work)
    pid = service.start(argv, plan.env, cwd=work)
    try:
        wait_until(service, pid, lambda: triton.ready(HOST, ports[0], ()), 120.0,
                   "server readiness")
        yield GridServer(pid, *ports, repository)
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)
