"""Pure benchmark arithmetic and report rendering (no services)."""

from __future__ import annotations

import pytest

from medstream_tools.bench import corpus, report, stats
from medstream_tools.bench.workloads import CNN_MODEL, decode_scan, decode_window


def test_drain_rate_skips_warmup() -> None:
    # 10 outputs at t=0 (start-up burst), then one every 0.1 s: the steady rate is 10/s
    times = [0.0] * 10 + [1.0 + 0.1 * i for i in range(90)]
    rate = stats.drain_rate(times, warmup_fraction=0.1)
    assert rate["msg_per_s"] == pytest.approx(10.0)
    assert rate["start"] == 1.0 and rate["messages"] == 89


def test_drain_rate_refuses_degenerate_input() -> None:
    with pytest.raises(ValueError):
        stats.drain_rate([1.0, 2.0])
    with pytest.raises(ValueError):
        stats.drain_rate([5.0] * 20)


def test_percentiles_and_latencies() -> None:
    intended = {"a": 10.0, "b": 11.0, "c": 12.0}
    arrived = {"a": 10.010, "b": 11.030, "lost": 99.0}
    lat = stats.latencies_ms(intended, arrived)
    assert lat == pytest.approx([10.0, 30.0])
    p = stats.percentiles(lat)
    assert p["p50"] == pytest.approx(20.0) and p["max"] == pytest.approx(30.0)
    with pytest.raises(ValueError):
        stats.percentiles([])


def test_interpolate_clamps_and_interpolates() -> None:
    series = [(0.0, 0.0), (2.0, 4.0), (4.0, 4.0)]
    assert stats.interpolate(series, -1.0) == 0.0
    assert stats.interpolate(series, 1.0) == pytest.approx(2.0)
    assert stats.interpolate(series, 9.0) == 4.0


def test_histogram_mean_between_scrapes() -> None:
    label = 'model="m"'
    before = {f"h_sum{{{label}}}": 10.0, f"h_count{{{label}}}": 5.0}
    after = {f"h_sum{{{label}}}": 70.0, f"h_count{{{label}}}": 7.0}
    assert stats.histogram_mean(before, after, "h", label) == pytest.approx(30.0)
    assert stats.histogram_mean(after, after, "h", label) is None


def _result() -> dict:
    paced = {"load": 0.5, "rate_msg_per_s": 50.0, "mean_batch": 4.0, "mean_inference_ms": 3.0,
             "latency_ms": {"p50": 10.0, "p95": 20.0, "p99": 30.0, "max": 40.0}}
    row = {
        "workload": "vitals", "kind": "vitals", "message_bytes": 3072,
        "preprocess": {"median_ms": 0.25}, "preprocess_pydicom": None,
        "scale_out": {"processes": 2, "msg_per_s": 3500.0},
        "ort": {"items_per_s": 20000.0, "best_batch": 16},
        "triton": {"items_per_s": 8000.0, "best_batch": 64, "best_concurrency": 4},
        "naive": {"msg_per_s": 100.0},
        "medstream": {"msg_per_s": 2000.0, "mean_batch": 60.0, "mean_inference_ms": 9.0,
                      "worker_cpu_s_per_1k": 0.5, "triton_cpu_s_per_1k": 0.5,
                      "peak_rss_bytes": 100 * 2**20, "paced": [paced],
                      "ct_series": None},
    }
    return {"plan": "quick", "started": 0.0, "duration_s": 60.0, "workloads": [row],
            "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 8, "gpu": "none", "os": "Linux",
                        "python": "3.11", "load_avg_1m": 0.5,
                        "packages": {"onnxruntime": "1", "nvidia-pytriton": "0.7.0",
                                     "faust-streaming": "0.15.3"}},
            "settings": {"vitals.max_batch": 64, "vitals.within_s": 0.02},
            "broker_hop": {"rate_msg_per_s": 200.0,
                           "by_fetch_wait_ms": {"20": {"p50": 12.0, "p99": 25.0}}}}


def test_ratios_and_cpu_bound() -> None:
    row = _result()["workloads"][0]
    r = report.ratios(row)
    assert r["vs_naive"] == pytest.approx(20.0)
    assert r["vs_triton"] == pytest.approx(0.25)
    # 1 ms of CPU per message on 2 cores -> 2,000 msg/s
    assert report.cpu_bound(row, cores=2) == pytest.approx(2000.0)
    # 2,000 msg/s x 1 ms of CPU each keeps 2 cores busy
    assert report.cores_used(row) == pytest.approx(2.0)


def test_markdown_block_replaced_and_commentary_kept(tmp_path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nCommentary above.\n\n<!-- bench:begin -->\nold\n"
                    "<!-- bench:end -->\n\nCommentary below.\n")
    report.write_markdown(path, _result())
    text = path.read_text()
    assert "Commentary above." in text and "Commentary below." in text
    assert "old" not in text
    assert "| vitals | 3 | 0.25 | - |" in text
    assert "x naive" in text and "20.0" in text
    assert "| 3,500.0 |" in text  # 2 processes
    assert "vitals 50.0 msg/s" in text  # p99 30 ms <= 2 x (20 + 3) ms


def test_overhead_and_latency_budget() -> None:
    result = _result()
    row = result["workloads"][0]
    assert report.overhead(row) == pytest.approx(2.0)  # 0.5 ms of worker CPU / 0.25 ms prep
    paced = row["medstream"]["paced"][0]
    assert report.budget_ms(row, paced, result["settings"]) == pytest.approx(46.0)
    paced["latency_ms"]["p99"] = 47.0
    assert report.rate_within_budget(row, result["settings"]) is None


def test_scan_messages_are_distinct_valid_dicom() -> None:

    messages = corpus.scan_messages("ct128", 3)
    assert len({m.event_id for m in messages}) == 3 and len({m.key for m in messages}) == 3
    for msg in messages:
        event_id, tensor = decode_scan(msg.value)
        assert event_id == msg.event_id and tensor.shape == (1, 128, 128)
    series = corpus.scan_messages("ct128", 3, one_study=True)
    assert len({m.key for m in series}) == 1 and len({m.event_id for m in series}) == 3


def test_vitals_messages_decode_with_their_ids() -> None:

    messages = corpus.vitals_messages("ev", 300)
    assert [decode_window(m.value)[0] for m in messages[:2]] == ["ev-0", "ev-1"]
    event_id, tensor = decode_window(messages[299].value)
    assert event_id == "ev-299" and tensor.shape == (60, 12)


def test_realsize_cnn_is_densenet121_behind_the_scan_tensors() -> None:
    import torch

    from medstream_tools.bench import densenet
    from worker.kinds.scan import scan_model_spec
    from worker.preprocess.formats import input_format

    net = densenet.DenseNet121()
    # torchvision's densenet121 has 7,978,856 parameters with 1,000 classes; 2 classes here
    assert sum(p.numel() for p in net.parameters()) == 7_978_856 - 1025 * 998
    assert densenet.NAME == CNN_MODEL
    config, spec = densenet.triton_config(), scan_model_spec(densenet.NAME)
    assert config["input"][0]["name"] == spec.inputs[0].name
    assert config["input"][0]["dims"] == list(input_format("gray128").dims)  # the scan tensors
    assert config["output"][0]["name"] == spec.outputs[0].name
    assert len(config["parameters"]["labels"]["string_value"].split(",")) == 2
    with torch.no_grad():
        probabilities = densenet.ScanInput().eval()(torch.rand(2, 1, 128, 128))
    assert probabilities.shape == (2, 2)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2))


def test_one_workload_can_be_chosen_by_name() -> None:
    from medstream_tools.bench import cli, runner

    names = ["scans-ct512", "vitals", "scans-densenet121"]
    assert cli.selected(runner.QUICK, "scans-densenet121", names) == ["scans-densenet121"]
    assert cli.selected(runner.QUICK, "vitals", names) == ["vitals"]
    with pytest.raises(SystemExit):
        cli.selected(runner.QUICK, "nothing", names)
