"""`medstream bench --quick` runs against the real local stack and reports every section.

No timing assertions: the figures depend on the machine. The test checks that every section
is present and every measured figure is a positive number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Throughput", "Latency", "Broker hop alone", "Clinical framing", "Machine:")


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


@pytest.mark.integration
@pytest.mark.slow
def test_bench_quick_reports_all_sections(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    env = {**os.environ, "MEDSTREAM_STATE_DIR": str(settings.state_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "worker.cli", "bench", "--quick", "--out", str(out)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    markdown = out.read_text()
    for section in SECTIONS:
        assert section in markdown, f"section {section!r} missing from the report"
    result = json.loads(out.with_suffix(".json").read_text())
    assert {w["workload"] for w in result["workloads"]} == {"scans-ct512", "vitals"}
    for row in result["workloads"]:
        name = row["workload"]
        for figure in (row["preprocess"]["median_ms"], row["ort"]["items_per_s"],
                       row["triton"]["items_per_s"], row["naive"]["msg_per_s"],
                       row["medstream"]["msg_per_s"], row["medstream"]["mean_batch"],
                       row["medstream"]["worker_cpu_s_per_1k"],
                       row["medstream"]["triton_cpu_s_per_1k"],
                       row["medstream"]["peak_rss_bytes"],
                       row["ratios"]["vs_naive"], row["ratios"]["vs_triton"]):
            assert _positive(figure), f"{name}: {figure!r} is not a positive number"
        assert row["medstream"]["deadletters"] == 0, f"{name}: valid inputs were dead-lettered"
        assert [p["load"] for p in row["medstream"]["paced"]] == [0.5, 0.8]
        for paced in row["medstream"]["paced"]:
            lat = paced["latency_ms"]
            assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], (name, lat)
    series = next(w for w in result["workloads"] if w["workload"] == "scans-ct512")
    ct = series["medstream"]["ct_series"]
    assert ct["slices"] == 300 and _positive(ct["last_slice_to_last_prediction_s"])
    for hop in result["broker_hop"]["by_fetch_wait_ms"].values():
        assert _positive(hop["p50"])
