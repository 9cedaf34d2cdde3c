"""The local Triton server: the `nvidia-pytriton` wheel's tritonserver with our backend folder.

The backend folder (under the state dir) holds `python/` from the wheel and
`onnxruntime/model.py` from `deploy/triton-backends/`, so a production model repository
(`backend: "onnxruntime"`, `1/model.onnx`) loads unchanged: without `libtriton_onnxruntime.so`
Triton falls back to `backends/onnxruntime/model.py`, run by the python backend.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import sysconfig
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from medstream_tools.localstack.process import Service, StackError

#: Repository root (this file is medstream_tools/localstack/triton.py).
ROOT = Path(__file__).resolve().parents[2]
SHIM_DIR = ROOT / "deploy" / "triton-backends"

_MODEL_FILES = {"onnxruntime": "model.onnx", "pytorch": "model.pt", "python": "model.py"}


@dataclass(frozen=True)
class TritonPlan:
    """How to run the server: argv, environment, ports and the models it must serve."""

    host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    models: tuple[str, ...]
    argv: tuple[str, ...]
    env: dict[str, str]


def _pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the 'nvidia-pytriton' package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def discover_models(repo: Path) -> tuple[str, ...]:
    """Names of the model directories in `repo` that have a config.pbtxt (sorted)."""
    if not repo.is_dir():
        raise StackError(f"model repository {repo} does not exist")
    return tuple(sorted(p.parent.name for p in repo.glob("*/config.pbtxt")))


def check_model(model_dir: Path) -> None:
    """Fail with a clear message when a model directory cannot possibly load.

    Checks what Triton would only report deep in its log: a config naming another model, and
    no numeric version directory holding the backend's model file.
    """
    text = (model_dir / "config.pbtxt").read_text(errors="replace")
    name = re.search(r'^\s*name\s*:\s*"([^"]*)"', text, re.MULTILINE)
    if name and name.group(1) != model_dir.name:
        raise StackError(
            f"{model_dir}/config.pbtxt names model {name.group(1)!r}, "
            f"but its directory is {model_dir.name!r}"
        )
    backend = re.search(r'^\s*backend\s*:\s*"([^"]*)"', text, re.MULTILINE)
    platform = re.search(r'^\s*platform\s*:\s*"([^"]*)"', text, re.MULTILINE)
    kind = backend.group(1) if backend else ("onnxruntime" if platform else None)
    default = re.search(r'^\s*default_model_filename\s*:\s*"([^"]*)"', text, re.MULTILINE)
    filename = default.group(1) if default else _MODEL_FILES.get(kind or "")
    versions = sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:
        raise StackError(f"model {model_dir.name!r}: no version directory (e.g. 1/) in {model_dir}")
    if filename and not any((v / filename).exists() for v in versions):
        raise StackError(
            f"model {model_dir.name!r}: missing model file {filename} in "
            f"{', '.join(str(v) for v in versions)}"
        )


def fingerprint(model_dir: Path) -> str:
    """Changes whenever a file of the model directory is added, removed or rewritten."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def assemble_backends(state_dir: Path) -> Path:
    """(Re)build `<state_dir>/triton-backends` from the wheel and our shims; returns it."""
    wheel = _pytriton_dir()
    target = state_dir / "triton-backends"
    shutil.rmtree(target, ignore_errors=True)
    python = target / "python"
    python.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(wheel / "backends" / "python" / name, python / name)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise StackError(f"the pytriton wheel has no python-backend stub for Python {version}")
    shutil.copy2(stub, python / stub.name)
    for shim in sorted(SHIM_DIR.glob("*/model.py")):
        (target / shim.parent.name).mkdir()
        shutil.copy2(shim, target / shim.parent.name / "model.py")
    return target


def plan(
    host: str, http_port: int, grpc_port: int, metrics_port: int, repo: Path, state_dir: Path
) -> TritonPlan:
    """Validate the repository, assemble the backends and build the server's command line."""
    models = discover_models(repo)
    if not models:
        raise StackError(f"model repository {repo} holds no <model>/config.pbtxt")
    for model in models:
        check_model(repo / model)
    wheel = _pytriton_dir()
    backends = assemble_backends(state_dir)
    argv = [
        str(wheel / "bin" / "tritonserver"),
        f"--model-repository={repo.resolve()}",
        f"--backend-directory={backends.resolve()}",
        f"--cache-directory={wheel / 'caches'}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in models),
        f"--http-address={host}", f"--http-port={http_port}",
        f"--grpc-address={host}", f"--grpc-port={grpc_port}",
        f"--metrics-address={host}", f"--metrics-port={metrics_port}",
        "--allow-metrics=true", "--allow-gpu-metrics=false",
        "--pinned-memory-pool-byte-size=0",
        "--exit-on-error=true", "--exit-timeout-secs=5",
        "--strict-readiness=true",
    ]
    return TritonPlan(
        host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
        models=models, argv=tuple(argv), env=_environment(wheel),
    )


def _environment(wheel: Path) -> dict[str, str]:
    """LD_LIBRARY_PATH with the wheel's libs and the venv's libpython; venv bin/ first on PATH."""
    env = dict(os.environ)
    libs = [str(wheel.parent.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libs)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _get(url: str, timeout_s: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def ready(host: str, http_port: int, models: tuple[str, ...], timeout_s: float = 2.0) -> bool:
    """True when the server and every model in `models` report ready over HTTP."""
    base = f"http://{host}:{http_port}/v2"
    if _get(f"{base}/health/ready", timeout_s)[0] != 200:
        return False
    return all(_get(f"{base}/models/{m}/ready", timeout_s)[0] == 200 for m in models)


def loaded_models(host: str, http_port: int, timeout_s: float = 2.0) -> list[dict[str, str]]:
    """The repository index (name, version, state, reason) of a running server."""
    req = urllib.request.Request(
        f"http://{host}:{http_port}/v2/repository/index", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return list(json.loads(resp.read()))


def service(state_dir: Path) -> Service:
    """The Triton server's pid-file/log identity."""
    return Service("triton", state_dir)
