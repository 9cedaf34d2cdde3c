"""max_batch_size grid for the served models: perf_analyzer against a private Triton.

    python -m medstream_tools.bench.batchgrid [--repository triton_models]
        [--models chest_xray_pneumonia,brain_mri_tumour] [--sizes 1,2,4,8,16]
        [--concurrencies 1,4,16] [--rounds 3] [--out docs/benchmarks.md] [--render GRID_JSON...]

Every max_batch_size variant of a model is loaded into a private tritonserver (`gridserver`:
the shared stack is untouched) and warmed up; then, round after round and concurrency after
concurrency, the variants are driven back to back (rotating order) by Triton's
`perf_analyzer` (C++ client of the tritonclient wheel) with single-image requests: the
dynamic batcher forms the batches, up to max_batch_size. Per point: infer/s,
p50/p99 latency and server queue/compute time (perf_analyzer), executed batches
(`nv_inference_count / nv_inference_exec_count`), and Triton's CPU per image: the server and
its python-backend stubs from /proc (procstat), over the same interval, divided by the images
it served. The Markdown block (gridreport) holds the medians over the rounds and the choice.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from medstream_tools.bench import gridreport, procstat, report
from medstream_tools.bench.gridserver import GridServer, grid_server, variant_name
from medstream_training import REPOSITORY

MODELS = ("chest_xray_pneumonia", "brain_mri_tumour")
SIZES = (1, 2, 4, 8, 16)
CONCURRENCIES = (1, 4, 16)
REQUESTS_PER_WINDOW = 40  # perf_analyzer count windows (time windows never settle here)
_LIBS = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12.*"}


def perf_analyzer_env(links: Path) -> dict[str, str]:
    """Environment for the wheel's perf_analyzer: it wants `libb64.so.0d` and
    `libcudart.so.12`, which `nvidia_pytriton.libs` ships under hashed names (linked in
    `links`)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise RuntimeError("the 'nvidia-pytriton' package is not installed")
    libs = Path(spec.origin).resolve().parents[1] / "nvidia_pytriton.libs"
    links.mkdir(parents=True, exist_ok=True)
    for name, pattern in _LIBS.items():
        target = next(libs.glob(pattern))
        (links / name).unlink(missing_ok=True)
        (links / name).symlink_to(target)
    return {**os.environ, "LD_LIBRARY_PATH": f"{links}:{libs}"}


def _perf_analyzer(server: GridServer, name: str, concurrency: int, requests: int,
                   env: dict[str, str], csv_path: Path) -> str:
    command = [str(Path(sys.executable).parent / "perf_analyzer"), "-m", name,
               "-u", server.grpc_url, "-i", "grpc", "-b", "1", "--input-data", "zero",
               "--concurrency-range", str(concurrency), "--measurement-mode", "count_windows",
               "--measurement-request-count", str(requests), "-s", "100", "-f", str(csv_path)]
    proc = subprocess.run(command, check=False, env=env, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"perf_analyzer failed ({proc.returncode}): "
                           f"{(proc.stdout + proc.stderr)[-2000:]}")
    return csv_path.read_text()


def _metrics(server: GridServer) -> str:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as resp:
        return resp.read().decode()


def measure(server: GridServer, name: str, concurrency: int, env: dict[str, str],
            scratch: Path) -> dict:
    """One perf_analyzer run at `concurrency`, with Triton's CPU and executions around it."""
    before_text, before = _metrics(server), procstat.sample_tree(server.pid)
    figures = gridreport.parse_perf_csv(_perf_analyzer(
        server, name, concurrency, max(REQUESTS_PER_WINDOW, 2 * concurrency), env,
        scratch / "point.csv"))
    after, after_text = procstat.sample_tree(server.pid), _metrics(server)
    images = (gridreport.counter(after_text, "nv_inference_count", name)
              - gridreport.counter(before_text, "nv_inference_count", name))
    executions = (gridreport.counter(after_text, "nv_inference_exec_count", name)
                  - gridreport.counter(before_text, "nv_inference_exec_count", name))
    cpu = after.cpu_s - before.cpu_s
    wait = after.runq_wait_s - before.runq_wait_s
    return {**figures, "images": images,
            "mean_exec_batch": images / executions if executions else None,
            "cpu_ms_per_image": cpu * 1e3 / images if images else None,
            "cpu_wait_share": wait / (wait + cpu) if wait + cpu > 0 else None}


def _measure_or_reload(server: GridServer, name: str, concurrency: int, env: dict[str, str],
                       scratch: Path) -> dict:
    """`measure`, once more after reloading the variant when Triton reports its backend stub
    unhealthy (seen twice on the shared machine, at max_batch_size 16); `retried` says so."""
    try:
        return {**measure(server, name, concurrency, env, scratch), "retried": False}
    except RuntimeError as exc:
        if "is not healthy" not in str(exc):
            raise
        print(f"{name}: backend stub unhealthy, reloading it and measuring again", flush=True)
        server.unload(name)
        server.load(name)
        _perf_analyzer(server, name, 2, 8, env, scratch / "warm.csv")
        return {**measure(server, name, concurrency, env, scratch), "retried": True}


def _order(sizes: tuple[int, ...], step: int) -> tuple[int, ...]:
    """The sizes rotated by `step`, reversed on odd steps: each size takes each position."""
    turn = step % len(sizes)
    rotated = sizes[turn:] + sizes[:turn]
    return rotated if step % 2 == 0 else tuple(reversed(rotated))


def run(repository: Path, models: tuple[str, ...], sizes: tuple[int, ...],
        concurrencies: tuple[int, ...], rounds: int, log_dir: Path | None = None) -> dict:
    """The whole grid; returns the JSON-able result (every point of every round).

    All variants of one model are loaded together, so that within a round the sizes are
    measured back to back at each concurrency (in a rotating order): the neighbours' load
    drifts over minutes, and a comparison within seconds is the fair one."""
    started, load_avg = time.time(), round(os.getloadavg()[0], 2)
    points = []
    with tempfile.TemporaryDirectory(prefix="medstream-pa-") as tmp:
        scratch = Path(tmp)
        env = perf_analyzer_env(scratch / "libs")
        with grid_server([repository / m for m in models], sizes, log_dir) as server:
            for model in models:
                names = {size: variant_name(model, size) for size in sizes}
                for name in names.values():
                    server.load(name)
                    _perf_analyzer(server, name, 2, 8, env, scratch / "warm.csv")
                try:
                    for rnd in range(rounds):
                        for step, conc in enumerate(concurrencies):
                            for size in _order(sizes, rnd * len(concurrencies) + step):
                                point = _measure_or_reload(server, names[size], conc, env,
                                                           scratch)
                                points.append({"round": rnd, "model": model,
                                               "max_batch_size": size, "concurrency": conc,
                                               **point})
                                print(json.dumps(points[-1]), flush=True)
                finally:
                    for name in names.values():
                        server.unload(name)
    return {"when": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "duration_s": time.time() - started, "load_avg_start": load_avg, "rounds": rounds,
            "models": list(models), "sizes": list(sizes), "concurrencies": list(concurrencies),
            "setup": (f"private tritonserver, onnxruntime python-backend shim, each model's built "
                      f"config.pbtxt with only max_batch_size changed (all sizes of a model "
                      f"loaded together, measured back to back in a rotating order); "
                      f"perf_analyzer gRPC, single-image requests, count windows of >= "
                      f"{REQUESTS_PER_WINDOW} requests; medians over the rounds"),
            "points": points}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m medstream_tools.bench.batchgrid",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=REPOSITORY,
                        help="where the models are built (medstream models build)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", type=_ints, default=SIZES)
    parser.add_argument("--concurrencies", type=_ints, default=CONCURRENCIES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"),
                        help="Markdown file whose grid block is replaced; raw points go to "
                             "<out>-grid.json")
    parser.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the private Triton's log (triton-grid.log) is kept")
    parser.add_argument("--render", type=Path, nargs="+", default=None, metavar="GRID_JSON",
                        help="measure nothing: render the block from saved grids (merged)")
    args = parser.parse_args(argv)
    if args.render is not None:
        result = gridreport.merge([json.loads(path.read_text()) for path in args.render])
    else:
        result = run(args.repository, tuple(args.models.split(",")), args.sizes,
                     args.concurrencies, args.rounds, args.log_dir)
    block = gridreport.render(result)
    print(block)
    report.write_section(args.out, gridreport.BEGIN, gridreport.END, block, result, "grid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
