"""`medstream top`'s text: a Frame rendered as the terminal table. Pure functions."""

from __future__ import annotations

from medstream_tools.top.frame import Frame

KIND_COLUMNS = (
    ("kind", -8),
    ("consumed", 10),
    ("/s", 8),
    ("predicted", 11),
    ("/s", 8),
    ("deadltr", 9),
    ("/s", 8),
    ("e2e p50", 9),
    ("p95", 8),
    ("p99", 8),
)
MODEL_COLUMNS = (
    ("model", -14),
    ("batch avg", 10),
    ("p95", 6),
    ("infer p95", 10),
    ("inflight", 9),
    ("errors", 8),
    ("circuit", 9),
    ("triton queue", 13),
    ("compute", 9),
    ("exec batch", 11),
)


def _n(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(seconds: float | None) -> str:
    return _n(None if seconds is None else seconds * 1000.0, "{:.0f}ms")


def _row(cells: list[str], columns: tuple[tuple[str, int], ...]) -> str:
    """Cells padded to the column widths (negative width = left-aligned)."""
    return "".join(c.ljust(-w) if w < 0 else c.rjust(w) for c, (_, w) in zip(cells, columns))


def _pairs(values: dict[str, float], empty: str) -> str:
    return ", ".join(f"{k}={v:.0f}" for k, v in sorted(values.items())) or empty


def render(frame: Frame, worker_url: str, triton_url: str) -> str:
    """The frame as plain text (no colours), one figure per column."""
    if frame.worker_error:
        state = "DOWN: " + frame.worker_error
    else:
        state = {1.0: "READY", 0.0: "NOT READY"}.get(frame.ready, "?")  # type: ignore[arg-type]
    triton = "DOWN: " + frame.triton_error if frame.triton_error else "up"
    window = f"last {frame.window_s:.1f}s" if frame.window_s else "since start (one scrape)"
    lines = [
        f"medstream top  worker {worker_url} [{state}]  triton {triton_url} [{triton}]",
        f"rates and percentiles: {window}",
        "",
        _row([name for name, _ in KIND_COLUMNS], KIND_COLUMNS),
    ]
    for k in frame.kinds:
        c, pr, d = k.per_s
        cells = [
            k.kind,
            f"{k.consumed:.0f}",
            _n(c),
            f"{k.predictions:.0f}",
            _n(pr),
            f"{k.deadletters:.0f}",
            _n(d),
            *(_ms(q) for q in k.e2e),
        ]
        lines.append(_row(cells, KIND_COLUMNS))
    lines += ["", _row([name for name, _ in MODEL_COLUMNS], MODEL_COLUMNS)]
    for m in frame.models:
        cells = [
            m.model,
            _n(m.batch_mean),
            _n(m.batch_p95, "{:.0f}"),
            _ms(m.infer_p95),
            f"{m.inflight:.0f}",
            f"{m.errors:.0f}",
            "OPEN" if m.circuit_open else "closed",
            _n(m.triton_queue_ms, "{:.2f}ms"),
            _n(m.triton_compute_ms, "{:.2f}ms"),
            _n(m.triton_batch),
        ]
        lines.append(_row(cells, MODEL_COLUMNS))
    lines += [
        "",
        "consumer lag: " + _pairs(frame.lag, "-"),
        "dead letters: " + _pairs(frame.deadletters, "none"),
        "inference errors: " + _pairs(frame.errors, "none"),
    ]
    return "\n".join(lines) + "\n"

