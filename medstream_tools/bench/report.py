"""Render a benchmark result as a console table, Markdown (docs/benchmarks.md) and JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

THROUGHPUT_HEAD = (
    "workload", "msg KB", "prep ms", "pydicom prep ms", "ORT items/s", "Triton items/s",
    "naive msg/s", "medstream msg/s", "x naive", "of Triton", "2 processes msg/s", "mean batch",
    "infer ms", "worker CPU s/1k", "overhead", "Triton CPU s/1k", "cores used", "CPU wait",
    "CPU-bound msg/s", "peak RSS MiB",
)
LATENCY_HEAD = ("workload", "load", "msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean batch",
                "infer ms", "budget ms")


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def ratios(row: dict) -> dict[str, float | None]:
    """medstream / naive, medstream / Triton ceiling, medstream / ORT in-process."""
    ms = row["medstream"]["msg_per_s"]
    return {"vs_naive": ms / row["naive"]["msg_per_s"] if row["naive"]["msg_per_s"] else None,
            "vs_triton": ms / row["triton"]["items_per_s"],
            "vs_ort": ms / row["ort"]["items_per_s"]}


def _cpu_per_msg(row: dict) -> float | None:
    m = row["medstream"]
    if m.get("worker_cpu_s_per_1k") is None or m.get("triton_cpu_s_per_1k") is None:
        return None
    per_msg = (m["worker_cpu_s_per_1k"] + m["triton_cpu_s_per_1k"]) / 1e3
    return per_msg if per_msg > 0 else None


def overhead(row: dict) -> float | None:
    """Worker CPU per message / prep ms: how much the worker spends beyond decode + preprocess."""
    cpu = row["medstream"].get("worker_cpu_s_per_1k")
    prep = row["preprocess"]["median_ms"]
    return None if cpu is None or not prep else cpu / prep  # s per 1k = ms per message


def budget_ms(row: dict, paced: dict, settings: dict) -> float | None:
    """The latency bound of the targets: 2 x (batch window + model time at that load)."""
    within = settings.get(f"{row.get('kind')}.within_s")
    infer = paced.get("mean_inference_ms")
    return None if within is None or infer is None else 2.0 * (within * 1e3 + infer)


def rate_within_budget(row: dict, settings: dict) -> float | None:
    """The highest paced rate whose p99 met its budget (throughput at a p99 latency budget)."""
    rates = [p["rate_msg_per_s"] for p in row["medstream"]["paced"]
             if (b := budget_ms(row, p, settings)) is not None and p["latency_ms"]["p99"] <= b]
    return max(rates, default=None)


def cpu_bound(row: dict, cores: int) -> float | None:
    """msg/s the machine's cores could sustain at the measured worker + Triton CPU per message."""
    per_msg = _cpu_per_msg(row)
    return None if per_msg is None else cores / per_msg


def cores_used(row: dict) -> float | None:
    """Cores the worker + Triton kept busy while draining (msg/s x CPU seconds per message)."""
    per_msg = _cpu_per_msg(row)
    return None if per_msg is None else row["medstream"]["msg_per_s"] * per_msg


def throughput_rows(result: dict) -> list[tuple[str, ...]]:
    """One row per workload, in THROUGHPUT_HEAD order."""
    cores = result["machine"]["cores"]
    rows = []
    for row in result["workloads"]:
        m, r, t, o = row["medstream"], ratios(row), row["triton"], row["ort"]
        reference = row.get("preprocess_pydicom") or {}
        rows.append((
            row["workload"], _num(row["message_bytes"] / 1024, 0),
            _num(row["preprocess"]["median_ms"], 2), _num(reference.get("median_ms"), 2),
            f"{_num(o['items_per_s'], 0)} (b{o['best_batch']})",
            f"{_num(t['items_per_s'], 0)} (b{t['best_batch']}xc{t['best_concurrency']})",
            _num(row["naive"]["msg_per_s"]), _num(m["msg_per_s"]),
            _num(r["vs_naive"]), _pct(r["vs_triton"]),
            _num((row.get("scale_out") or {}).get("msg_per_s")),
            _num(m.get("mean_batch")), _num(m.get("mean_inference_ms")),
            _num(m.get("worker_cpu_s_per_1k"), 2), _num(overhead(row)),
            _num(m.get("triton_cpu_s_per_1k"), 2), _num(cores_used(row), 2),
            _pct(m.get("cpu_wait_share")), _num(cpu_bound(row, cores), 0),
            _num(m["peak_rss_bytes"] / 2**20, 0),
        ))
    return rows


def latency_rows(result: dict) -> list[tuple[str, ...]]:
    """One row per workload and paced load level, in LATENCY_HEAD order."""
    rows = []
    settings = result.get("settings", {})
    for row in result["workloads"]:
        for p in row["medstream"]["paced"]:
            lat = p["latency_ms"]
            rows.append((row["workload"], f"{int(p['load'] * 100)}%", _num(p["rate_msg_per_s"]),
                         _num(lat["p50"]), _num(lat["p95"]), _num(lat["p99"]), _num(lat["max"]),
                         _num(p.get("mean_batch")), _num(p.get("mean_inference_ms")),
                         _num(budget_ms(row, p, settings))))
    return rows


def budget_line(result: dict) -> str:
    """Throughput at the p99 budget (2 x (batch window + model time)), as Model Analyzer reports."""
    settings = result.get("settings", {})
    parts = [f"{row['workload']} {_num(rate_within_budget(row, settings))} msg/s"
             for row in result["workloads"]]
    return ("Throughput at the p99 budget (highest paced load with p99 <= 2 x (batch window + "
            "model time); - = none met it): " + ", ".join(parts))


def hop_line(result: dict) -> str:
    """The broker-only produce -> consume latency, per consumer fetch wait."""
    hop = result["broker_hop"]
    parts = [f"fetch_max_wait_ms={wait}: p50 {_num(p['p50'])} ms, p99 {_num(p['p99'])} ms"
             for wait, p in hop["by_fetch_wait_ms"].items()]
    return f"Broker hop alone at {hop['rate_msg_per_s']:.0f} msg/s: " + "; ".join(parts)


def clinical_lines(result: dict) -> list[str]:
    """The CT-series figure, one sentence per workload that ran it."""
    lines = []
    for row in result["workloads"]:
        ct = row["medstream"].get("ct_series")
        if ct:
            lines.append(
                f"{row['workload']}: a {ct['slices']}-slice series sent as one study in "
                f"{ct['send_s']:.2f} s; last slice acknowledged -> last prediction received "
                f"{ct['last_slice_to_last_prediction_s']:.2f} s (first slice -> last prediction "
                f"{ct['first_slice_to_last_prediction_s']:.2f} s)")
    return lines


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows])


def _machine_line(machine: dict) -> str:
    pk = machine["packages"]
    return (f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
            f"{machine['gpu']}, {machine['os']}, Python {machine['python']}, load avg "
            f"{machine['load_avg_1m']} at start; onnxruntime {pk['onnxruntime']}, tritonserver "
            f"(nvidia-pytriton {pk['nvidia-pytriton']}), faust-streaming {pk['faust-streaming']}")


def render(result: dict, markdown: bool) -> str:
    """The whole report as text (console) or Markdown (sections as separate paragraphs)."""
    when = datetime.fromtimestamp(result["started"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"medstream bench ({result['plan']}, {when}, {result['duration_s']:.0f} s)"
    clinical = clinical_lines(result)
    sections = [
        [f"### {title}" if markdown else title],
        [f"Machine: {_machine_line(result['machine'])}"],
        [f"Worker settings: {json.dumps(result['settings'], sort_keys=True)}"],
        ["**Throughput** (pre-filled topic, steady state)" if markdown else "Throughput"],
        [_table(THROUGHPUT_HEAD, throughput_rows(result), markdown)],
        ["**Latency** (paced open-loop load, event sent -> prediction received)"
         if markdown else "Latency"],
        [_table(LATENCY_HEAD, latency_rows(result), markdown)],
        [budget_line(result)],
        [hop_line(result)],
        ["**Clinical framing**" if markdown else "Clinical framing"],
        [f"- {line}" for line in clinical] if markdown else clinical,
    ]
    return ("\n\n" if markdown else "\n").join("\n".join(lines) for lines in sections) + "\n"


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    """`text` with its generated block (begin marker .. end marker) replaced by `block`
    (which carries the markers), or `block` appended when there is none."""
    if begin in text and end in text:
        return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text,
                      flags=re.DOTALL)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_markdown(path: Path, result: dict) -> None:
    """Replace the generated block of `path` (between the bench markers), keeping commentary."""
    block = f"{BEGIN}\n{render(result, markdown=True)}{END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_block(text, BEGIN, END, block))


def write_section(path: Path, begin: str, end: str, block: str, result: dict,
                  suffix: str) -> None:
    """Replace one generated block of the Markdown file `path` (a sub-mode's), and write the
    sub-mode's raw result beside it as `<stem>-<suffix>.json`."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_block(text, begin, end, block))
    path.with_name(f"{path.stem}-{suffix}.json").write_text(
        json.dumps(result, indent=2, sort_keys=True) + "\n")


def write_json(path: Path, result: dict) -> None:
    """The full result, with the derived ratios added per workload."""
    enriched = {**result, "workloads": [{**row, "ratios": ratios(row)}
                                        for row in result["workloads"]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(enriched, indent=2, sort_keys=True) + "\n")
