"""Pure side of the max_batch_size grid: perf_analyzer's CSV, medians over rounds, the choice,
and the Markdown block of docs/benchmarks.md (between the grid markers)."""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Sequence

BEGIN, END = "<!-- grid:begin -->", "<!-- grid:end -->"
FIGURES = ("infer_per_s", "p50_ms", "p99_ms", "cpu_ms_per_image", "mean_exec_batch",
           "queue_ms", "compute_ms", "cpu_wait_share")
TOLERANCE = 0.05
"""Throughputs within this fraction of the best count as equal (the shared machine's noise)."""


def parse_perf_csv(text: str) -> dict[str, float]:
    """The one row of `perf_analyzer -f` CSV -> infer/s, latency percentiles and server-side
    queue/compute time (milliseconds; perf_analyzer writes microseconds)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1:
        raise ValueError(f"expected one perf_analyzer row, got {len(rows)}")
    row = rows[0]
    out = {"infer_per_s": float(row["Inferences/Second"])}
    for column, key in (("p50 latency", "p50_ms"), ("p90 latency", "p90_ms"),
                        ("p95 latency", "p95_ms"), ("p99 latency", "p99_ms"),
                        ("Server Queue", "queue_ms"), ("Server Compute Infer", "compute_ms")):
        out[key] = float(row[column]) / 1e3
    return out


def counter(metrics_text: str, name: str, model: str) -> float:
    """One model's value of a Triton counter in Prometheus text (0 when absent)."""
    pattern = rf'^{re.escape(name)}{{model="{re.escape(model)}",version="[^"]*"}} (\S+)$'
    match = re.search(pattern, metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def medians(points: Sequence[dict]) -> dict[tuple[str, int, int], dict[str, float]]:
    """(model, max_batch_size, concurrency) -> median of every figure over the rounds, plus
    the number of rounds and the spread (min, max) of throughput."""
    cells: dict[tuple[str, int, int], list[dict]] = {}
    for p in points:
        cells.setdefault((p["model"], p["max_batch_size"], p["concurrency"]), []).append(p)
    out = {}
    for key, ps in cells.items():
        row = {f: statistics.median(p[f] for p in ps) for f in FIGURES
               if all(p.get(f) is not None for p in ps)}
        row["rounds"] = len(ps)
        row["infer_min"] = min(p["infer_per_s"] for p in ps)
        row["infer_max"] = max(p["infer_per_s"] for p in ps)
        out[key] = row
    return out


def choose(cells: dict[tuple[str, int, int], dict[str, float]], model: str,
           tolerance: float = TOLERANCE) -> dict:
    """The max_batch_size for `model`: among the sizes whose median throughput is within
    `tolerance` of the best at **every** concurrency with more than one request in flight
    (where batching can happen), the one with the lowest worst-case p99 across those
    concurrencies; ties go to the smaller size (less queueing, smaller worker requests).
    Returns the choice and, per size, why it was kept or dropped."""
    mine = {(s, c): row for (m, s, c), row in cells.items() if m == model}
    sizes = sorted({s for s, _ in mine})
    loaded = sorted({c for _, c in mine if c > 1}) or sorted({c for _, c in mine})
    best = {c: max(mine[s, c]["infer_per_s"] for s in sizes if (s, c) in mine) for c in loaded}
    verdicts = {}
    for s in sizes:
        short = [c for c in loaded if (s, c) not in mine
                 or mine[s, c]["infer_per_s"] < (1 - tolerance) * best[c]]
        worst_p99 = max((mine[s, c]["p99_ms"] for c in loaded if (s, c) in mine), default=None)
        verdicts[s] = {"kept": not short, "below_best_at": short, "worst_p99_ms": worst_p99}
    kept = [s for s in sizes if verdicts[s]["kept"]]
    chosen = min(kept, key=lambda s: (verdicts[s]["worst_p99_ms"], s))
    return {"model": model, "max_batch_size": chosen, "tolerance": tolerance,
            "concurrencies": loaded, "best_infer_per_s": best, "sizes": verdicts}


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


GRID_HEAD = ("model", "max_batch_size", "concurrency", "infer/s (min-max)", "p50 ms", "p99 ms",
             "mean executed batch", "queue ms", "compute ms", "Triton CPU ms/image", "CPU wait")


def grid_rows(cells: dict[tuple[str, int, int], dict[str, float]]) -> list[tuple[str, ...]]:
    """One row per cell, in GRID_HEAD order (medians over the rounds)."""
    rows = []
    for (model, size, conc), r in sorted(cells.items()):
        wait = r.get("cpu_wait_share")
        rows.append((model, str(size), str(conc),
                     f"{_n(r['infer_per_s'])} ({_n(r['infer_min'])}-{_n(r['infer_max'])})",
                     _n(r["p50_ms"], 0), _n(r["p99_ms"], 0), _n(r.get("mean_exec_batch"), 2),
                     _n(r.get("queue_ms"), 0), _n(r.get("compute_ms"), 0),
                     _n(r.get("cpu_ms_per_image")), "-" if wait is None else f"{100 * wait:.0f}%"))
    return rows


def choice_line(choice: dict) -> str:
    """One sentence: the chosen size and why the others were dropped."""
    dropped = [f"{s} (below the best at concurrency {', '.join(map(str, v['below_best_at']))})"
               for s, v in choice["sizes"].items() if not v["kept"]]
    kept = [f"{s} (worst p99 {_n(v['worst_p99_ms'], 0)} ms)"
            for s, v in choice["sizes"].items() if v["kept"]]
    return (f"`{choice['model']}`: **max_batch_size {choice['max_batch_size']}**; within "
            f"{choice['tolerance']:.0%} of the best throughput at every concurrency: "
            f"{', '.join(kept)}" + (f"; dropped: {', '.join(dropped)}" if dropped else ""))


def render(result: dict) -> str:
    """The Markdown block: settings, the grid of medians and the choice per model."""
    cells = medians(result["points"])
    head = "| " + " | ".join(GRID_HEAD) + " |\n|" + "---|" * len(GRID_HEAD)
    table = "\n".join([head] + ["| " + " | ".join(r) + " |" for r in grid_rows(cells)])
    choices = "\n".join(f"- {choice_line(choose(cells, m))}" for m in result["models"])
    return (f"{BEGIN}\n### max_batch_size grid ({result['when']}, {result['duration_s']:.0f} s, "
            f"{result['rounds']} rounds, load avg {result['load_avg_start']} at start)\n\n"
            f"`python -m medstream_tools.bench.batchgrid`: {result['setup']}\n\n{table}\n\n"
            f"{choices}\n{END}")
