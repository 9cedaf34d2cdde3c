"""The max_batch_size grid's pure parts: config variants, perf_analyzer CSV, medians, choice;
and the recorded grid's choice is the shipped one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medstream_tools.bench import gridreport, report
from medstream_tools.bench.gridserver import variant_config, variant_name, write_variant
from medstream_training.keras_sources import SOURCES

ROOT = Path(__file__).resolve().parents[2]

CONFIG = 'name: "chest"\nbackend: "onnxruntime"\nmax_batch_size: 4\ninput [\n]\n'
CSV = ("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
       "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
       "p50 latency,p90 latency,p95 latency,p99 latency\n"
       "4,30.4712,20,2120,5824,138,120817,1455,3,108730,210682,244589,267044\n")


def test_a_variant_renames_the_model_and_changes_only_max_batch_size() -> None:
    out = variant_config(CONFIG, variant_name("chest", 16), 16)
    assert out == CONFIG.replace('"chest"', '"chest_mbs16"').replace("size: 4", "size: 16")
    with pytest.raises(ValueError):
        variant_config('backend: "onnxruntime"\n', "x", 2)


def test_a_variant_links_the_built_onnx_file(tmp_path: Path) -> None:
    built = tmp_path / "built" / "chest"
    (built / "1").mkdir(parents=True)
    (built / "config.pbtxt").write_text(CONFIG)
    (built / "1" / "model.onnx").write_bytes(b"onnx")
    name = write_variant(tmp_path / "repo", built, 2)
    variant = tmp_path / "repo" / name
    assert name == "chest_mbs2" and "max_batch_size: 2" in (variant / "config.pbtxt").read_text()
    assert (variant / "1" / "model.onnx").is_symlink()
    assert (variant / "1" / "model.onnx").read_bytes() == b"onnx"
    assert (built / "config.pbtxt").read_text() == CONFIG  # the built model is untouched


def test_perf_analyzer_csv_in_milliseconds() -> None:
    row = gridreport.parse_perf_csv(CSV)
    assert row["infer_per_s"] == pytest.approx(30.4712)
    assert (row["p50_ms"], row["p99_ms"]) == (pytest.approx(108.73), pytest.approx(267.044))
    assert (row["queue_ms"], row["compute_ms"]) == (pytest.approx(5.824), pytest.approx(120.817))
    with pytest.raises(ValueError):
        gridreport.parse_perf_csv(CSV.splitlines()[0])


def test_triton_counters_by_model() -> None:
    text = ('nv_inference_count{model="a_mbs4",version="1"} 126\n'
            'nv_inference_count{model="a_mbs16",version="1"} 7\n')
    assert gridreport.counter(text, "nv_inference_count", "a_mbs4") == 126.0
    assert gridreport.counter(text, "nv_inference_exec_count", "a_mbs4") == 0.0


def _point(size: int, conc: int, infer: float, p99: float, rnd: int = 0) -> dict:
    return {"round": rnd, "model": "m", "max_batch_size": size, "concurrency": conc,
            "infer_per_s": infer, "p50_ms": p99 / 2, "p99_ms": p99, "cpu_ms_per_image": 30.0,
            "mean_exec_batch": 1.0, "queue_ms": 1.0, "compute_ms": 20.0, "cpu_wait_share": 0.5}


def test_medians_over_rounds_with_their_spread() -> None:
    cells = gridreport.medians([_point(4, 4, v, 100.0, r) for r, v in enumerate((10, 30, 20))])
    row = cells["m", 4, 4]
    assert (row["infer_per_s"], row["infer_min"], row["infer_max"], row["rounds"]) == (20, 10, 30, 3)


def test_relative_throughput_is_against_the_best_size_of_the_same_round() -> None:
    # round 1 ran on a busier machine: every size is slower, the ratios are the same
    points = [_point(2, 4, 40, 100, 0), _point(4, 4, 50, 100, 0),
              _point(2, 4, 20, 100, 1), _point(4, 4, 25, 100, 1), _point(2, 16, 30, 100, 1)]
    rel = {(p["max_batch_size"], p["concurrency"], p["round"]): p["relative"]
           for p in gridreport.relative(points)}
    assert rel == {(2, 4, 0): 0.8, (4, 4, 0): 1.0, (2, 4, 1): 0.8, (4, 4, 1): 1.0, (2, 16, 1): 1.0}
    assert gridreport.medians(points)["m", 2, 4]["relative"] == pytest.approx(0.8)


# (size, concurrency) -> (median infer/s, median p99 ms)
GRID = {(1, 1): (20, 90), (2, 1): (20, 95), (4, 1): (20, 90), (8, 1): (19, 90),
        (1, 4): (25, 300), (2, 4): (44, 170), (4, 4): (50, 150), (8, 4): (51, 160),
        (1, 16): (25, 900), (2, 16): (42, 500), (4, 16): (52, 520), (8, 16): (53, 480)}


def _grid(model: str = "m", grid: dict = GRID) -> list[dict]:
    return [{**_point(s, c, v, p), "model": model} for (s, c), (v, p) in grid.items()]


def test_the_choice_is_the_smallest_size_near_the_best_worst_case_throughput() -> None:
    choice = gridreport.choose(_grid(), ["m"])
    assert choice["concurrencies"] == [4, 16]  # concurrency 1 cannot batch
    # worst of (of the best at 4, of the best at 16): 1 -> 25/53, 2 -> 42/53, 4 -> 50/51
    assert choice["scores"] == pytest.approx({1: 25 / 53, 2: 42 / 53, 4: 50 / 51, 8: 1.0})
    assert choice["kept"] == [4, 8] and choice["max_batch_size"] == 4
    assert "**max_batch_size 4**" in gridreport.choice_line(choice)
    assert gridreport.choose(_grid(), ["m"], tolerance=0.25)["max_batch_size"] == 2


def test_a_smaller_size_that_queues_longer_is_not_chosen() -> None:
    # 1 and 2 serve within 0.10 of the best rate (as Xception without ORT spinning), but their p99 is
    # more than 10 % above the best-scoring size's (8) at 4 in flight: 4 is chosen
    grid = dict(GRID)
    grid |= {(1, 4): (47, 180), (2, 4): (49, 190), (1, 16): (50, 500), (2, 16): (51, 500)}
    choice = gridreport.choose(_grid(grid=grid), ["m"])
    assert all(score >= 0.9 for score in choice["scores"].values())
    assert choice["kept"] == [4, 8] and choice["max_batch_size"] == 4
    assert "at most 10% above the best size's" in gridreport.choice_line(choice)
    grid[1, 4] = (47, 160)  # as fast, and queueing no longer than 10 % over 8's: the smallest wins
    assert gridreport.choose(_grid(grid=grid), ["m"])["max_batch_size"] == 1


def test_models_of_the_same_cost_are_pooled() -> None:
    # b alone prefers 2; pooled with a (which prefers 4 and 8), the medians of both decide
    rates = {1: 30.0, 2: 50.0, 4: 47.0, 8: 30.0}
    other = {(s, c): (rates[s], 100) for s in rates for c in (1, 4, 16)}
    points = _grid("a") + _grid("b", other)
    assert gridreport.choose(points, ["b"], tolerance=0.05)["max_batch_size"] == 2
    pooled = gridreport.choose(points, ["a", "b"], tolerance=0.05)
    assert pooled["models"] == ["a", "b"] and pooled["max_batch_size"] == 4
    assert pooled["scores"][4] == pytest.approx((50 / 51 + 47 / 50) / 2)  # the median of two


def test_the_block_replaces_its_previous_version() -> None:
    result = {"when": "now", "duration_s": 1.0, "rounds": 1, "load_avg_start": 1.0,
              "setup": "test", "models": ["m"], "points": _grid()}
    block = gridreport.render(result)
    assert block.startswith(gridreport.BEGIN) and block.endswith(gridreport.END)
    assert "| m | 8 | 16 | 53.0 (53.0-53.0) | 1.00 | 240 | 480 |" in block
    old = f"# B\n\nintro\n\n{gridreport.BEGIN}\nx\n{gridreport.END}\n\nafter\n"
    text = report.replace_block(old, gridreport.BEGIN, gridreport.END, block)
    assert text == old.replace(f"{gridreport.BEGIN}\nx\n{gridreport.END}", block)
    appended = report.replace_block("# B\n", gridreport.BEGIN, gridreport.END, block)
    assert appended == f"# B\n\n{block}\n"


def test_grid_runs_merge_with_their_rounds_numbered_on() -> None:
    one = {"when": "a", "duration_s": 1.0, "rounds": 2, "load_avg_start": 1.0, "setup": "s",
           "models": ["m"], "points": [_point(4, 4, 10, 100, 0), _point(4, 4, 20, 100, 1)]}
    two = {**one, "when": "b", "rounds": 1, "load_avg_start": 3.0,
           "points": [_point(4, 4, 30, 100, 0)]}
    merged = gridreport.merge([one, two])
    assert [p["round"] for p in merged["points"]] == [0, 1, 2] and merged["rounds"] == 3
    assert (merged["when"], merged["load_avg_start"], merged["duration_s"]) == ("a + b", "1.0 / 3.0", 2.0)
    other = gridreport.merge([one, {**two, "models": ["n"], "points": [
        {**_point(4, 4, 30, 100, 0), "model": "n"}]}])
    assert other["models"] == ["m", "n"] and other["points"][-1]["round"] == 2


class _Server:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def load(self, name: str) -> None:
        self.calls.append(f"load {name}")

    def unload(self, name: str) -> None:
        self.calls.append(f"unload {name}")


def test_an_unhealthy_backend_stub_is_reloaded_and_measured_once_more(monkeypatch) -> None:
    from medstream_tools.bench import batchgrid

    failures = [RuntimeError("perf_analyzer failed (99): Stub process 'm_mbs16_1' is not healthy.")]

    def measure(*_: object) -> dict:
        if failures:
            raise failures.pop()
        return {"infer_per_s": 1.0}

    monkeypatch.setattr(batchgrid, "measure", measure)
    monkeypatch.setattr(batchgrid, "_perf_analyzer", lambda *_: "")
    server = _Server()
    point = batchgrid._measure_or_reload(server, "m_mbs16", 4, {}, Path("."))
    assert point == {"infer_per_s": 1.0, "retried": True}
    assert server.calls == ["unload m_mbs16", "load m_mbs16"]
    failures.append(RuntimeError("perf_analyzer failed (1): connection refused"))
    with pytest.raises(RuntimeError, match="connection refused"):
        batchgrid._measure_or_reload(server, "m_mbs16", 4, {}, Path("."))


def test_the_shipped_max_batch_size_is_the_recorded_grids_choice() -> None:
    """The one grid decides: the pooled choice of the recorded grid (docs/benchmarks-grid.json,
    cited by the model card) is what the build writes into each imported model's config."""
    grid = json.loads((ROOT / "docs" / "benchmarks-grid.json").read_text())
    models = [m for m in grid["models"] if m in SOURCES]
    assert sorted(models) == sorted(SOURCES)
    choice = gridreport.choose(grid["points"], models)["max_batch_size"]
    assert {name: source.max_batch_size for name, source in SOURCES.items()} == dict.fromkeys(
        SOURCES, choice)
