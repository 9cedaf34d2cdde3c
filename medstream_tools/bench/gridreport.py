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
TOLERANCE = 0.10
"""Relative throughputs this close to the best count as equal (the shared machine's noise)."""


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


def relative(points: Sequence[dict]) -> list[dict]:
    """The points with `relative`: infer/s as a fraction of the best size's in the same round
    at the same concurrency (measured back to back, so the neighbours' load cancels)."""
    best: dict[tuple, float] = {}
    for p in points:
        key = (p["model"], p["round"], p["concurrency"])
        best[key] = max(best.get(key, 0.0), p["infer_per_s"])
    return [{**p, "relative": p["infer_per_s"] / best[p["model"], p["round"], p["concurrency"]]}
            for p in points]


def medians(points: Sequence[dict]) -> dict[tuple[str, int, int], dict[str, float]]:
    """(model, max_batch_size, concurrency) -> median of every figure over the rounds (and of
    `relative`), plus the number of rounds and the spread (min, max) of throughput."""
    cells: dict[tuple[str, int, int], list[dict]] = {}
    for p in relative(points):
        cells.setdefault((p["model"], p["max_batch_size"], p["concurrency"]), []).append(p)
    out = {}
    for key, ps in cells.items():
        row = {f: statistics.median(p[f] for p in ps) for f in (*FIGURES, "relative")
               if all(p.get(f) is not None for p in ps)}
        row["rounds"] = len(ps)
        row["infer_min"] = min(p["infer_per_s"] for p in ps)
        row["infer_max"] = max(p["infer_per_s"] for p in ps)
        out[key] = row
    return out


def choose(points: Sequence[dict], models: Sequence[str],
           tolerance: float = TOLERANCE) -> dict:
    """One max_batch_size for `models` (pooled: the imported models share Xception's body and
    input, so their cost is the same and pooling doubles the samples). A size's score is its
    worst median relative throughput over the concurrencies with more than one request in
    flight (where batching can happen). The choice is the smallest size whose score is within
    `tolerance` of the best and whose median p99 there is at most `tolerance` above the
    best-scoring size's: a smaller size must be as fast and must not queue longer (smaller
    sizes make the worker's requests smaller, but with ONNX Runtime's spinning off size 1 and 2
    measured within 0.10 of the best yet queued longer). Returns the choice, every size's
    score, and the sizes kept."""
    mine = relative([p for p in points if p["model"] in models])
    cells: dict[tuple[int, int], list[dict]] = {}
    for p in mine:
        cells.setdefault((p["max_batch_size"], p["concurrency"]), []).append(p)
    sizes = sorted({s for s, _ in cells})
    loaded = sorted({c for _, c in cells if c > 1}) or sorted({c for _, c in cells})

    def median(size: int, concurrency: int, figure: str) -> float | None:
        values = [p[figure] for p in cells.get((size, concurrency), [])
                  if p.get(figure) is not None]
        return statistics.median(values) if values else None

    scores = {s: min(median(s, c, "relative") or 0.0 for c in loaded) for s in sizes}
    best = max(sizes, key=lambda s: (scores[s], -s))

    def queues_no_longer(size: int) -> bool:
        pairs = [(median(size, c, "p99_ms"), median(best, c, "p99_ms")) for c in loaded]
        return all(mine_p99 <= (1 + tolerance) * best_p99 for mine_p99, best_p99 in pairs
                   if mine_p99 is not None and best_p99 is not None)

    kept = [s for s in sizes if scores[s] >= scores[best] - tolerance and queues_no_longer(s)]
    return {"models": list(models), "max_batch_size": kept[0], "tolerance": tolerance,
            "concurrencies": loaded, "scores": scores, "kept": kept}


def merge(results: Sequence[dict]) -> dict:
    """Several grid runs as one, for more rounds per cell: their rounds numbered on, their
    models in order of appearance (a run may have measured some of them only)."""
    points, offset = [], 0
    for r in results:
        points += [{**p, "round": p["round"] + offset} for p in r["points"]]
        offset += r["rounds"]
    models = list(dict.fromkeys(m for r in results for m in r["models"]))
    return {**results[0], "points": points, "rounds": offset, "models": models,
            "when": " + ".join(r["when"] for r in results),
            "duration_s": sum(r["duration_s"] for r in results),
            "load_avg_start": " / ".join(str(r["load_avg_start"]) for r in results)}


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


GRID_HEAD = ("model", "max_batch_size", "concurrency", "infer/s (min-max)", "of the best",
             "p50 ms", "p99 ms",
             "mean executed batch", "queue ms", "compute ms", "Triton CPU ms/image", "CPU wait")


def grid_rows(cells: dict[tuple[str, int, int], dict[str, float]]) -> list[tuple[str, ...]]:
    """One row per cell, in GRID_HEAD order (medians over the rounds)."""
    rows = []
    for (model, size, conc), r in sorted(cells.items()):
        wait = r.get("cpu_wait_share")
        rows.append((model, str(size), str(conc),
                     f"{_n(r['infer_per_s'])} ({_n(r['infer_min'])}-{_n(r['infer_max'])})",
                     _n(r["relative"], 2),
                     _n(r["p50_ms"], 0), _n(r["p99_ms"], 0), _n(r.get("mean_exec_batch"), 2),
                     _n(r.get("queue_ms"), 0), _n(r.get("compute_ms"), 0),
                     _n(r.get("cpu_ms_per_image")), "-" if wait is None else f"{100 * wait:.0f}%"))
    return rows


def choice_line(choice: dict) -> str:
    """One sentence: the chosen size and every size's score."""
    scores = ", ".join(f"{s}: {v:.2f}" for s, v in choice["scores"].items())
    return (f"{', '.join(f'`{m}`' for m in choice['models'])}: **max_batch_size "
            f"{choice['max_batch_size']}**, the smallest within {choice['tolerance']:.2f} of the "
            f"best worst-case relative throughput at concurrency "
            f"{', '.join(map(str, choice['concurrencies']))} whose p99 there is at most "
            f"{choice['tolerance']:.0%} above the best size's (size: score {scores}; kept "
            f"{', '.join(map(str, choice['kept']))})")


def render(result: dict) -> str:
    """The Markdown block: settings, the grid of medians, each model's choice and the pooled
    one."""
    cells = medians(result["points"])
    head = "| " + " | ".join(GRID_HEAD) + " |\n|" + "---|" * len(GRID_HEAD)
    table = "\n".join([head] + ["| " + " | ".join(r) + " |" for r in grid_rows(cells)])
    lines = [f"- {choice_line(choose(result['points'], [m]))}" for m in result["models"]]
    pooled = choose(result["points"], result["models"])
    choices = "\n".join([*lines, f"- pooled, **the choice**: {choice_line(pooled)}"])
    return (f"{BEGIN}\n### max_batch_size grid ({result['when']}, {result['duration_s']:.0f} s, "
            f"{result['rounds']} rounds, load avg {result['load_avg_start']} at start)\n\n"
            f"`python -m medstream_tools.bench.batchgrid`: {result['setup']}\n\n{table}\n\n"
            f"{choices}\n{END}")
