"""STAT lanes in `medstream demo`: the edge puts the brain MR (and nothing else) on the STAT lane,
the per-lane check fails on a mismatch, and the worker's stop leaves no process behind."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pydicom

from medstream_tools.demo import supervisor
from medstream_tools.demo.lanes import (
    edge_settings,
    lane_env,
    output_lane,
    print_lanes,
    published,
    topic_lane,
)
from medstream_tools.demo.pipeline import INPUTS, OTHER_TOPICS, sample_scans, stat_answered
from medstream_tools.demo.samples import STAT_SAMPLE
from producers.priority import dicom_priority, publish_topic
from worker.contracts import LANE_HEADER, Prediction
from worker.lanes import ROUTINE, STAT
from worker.settings import Settings

TOPICS = {k: f"demo-run-{k}" for k in (*INPUTS, *OTHER_TOPICS)}


def test_the_edge_publishes_the_stat_sample_and_only_it_on_the_stat_topic() -> None:
    edge = edge_settings(Settings(), TOPICS)
    chosen = {}
    for name, data in sample_scans():
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        chosen[name] = publish_topic(edge, edge.scan, dicom_priority(ds), lambda: None)
    assert chosen.pop(STAT_SAMPLE) == TOPICS["scans.stat"]
    assert chosen and set(chosen.values()) == {TOPICS["scans"]}


def test_the_worker_gets_lanes_on_with_this_runs_stat_topics() -> None:
    assert lane_env(TOPICS) == {"MEDSTREAM_LANES__ENABLED": "true",
                                "MEDSTREAM_SCAN__STAT_TOPIC": TOPICS["scans.stat"],
                                "MEDSTREAM_VITALS__STAT_TOPIC": TOPICS["vitals.stat"]}
    assert (topic_lane(TOPICS["vitals.stat"], TOPICS), topic_lane(TOPICS["vitals"], TOPICS)) == (
        STAT, ROUTINE)


def test_the_lane_check_fails_when_a_stat_input_is_served_by_the_routine_worker(capsys) -> None:
    sent = published(TOPICS, [TOPICS["scans.stat"], TOPICS["scans"], TOPICS["vitals"]])
    assert sent == Counter({"scan/stat": 1, "scan/routine": 1, "vitals/routine": 1})
    ports = {ROUTINE: 6066, STAT: 6067}
    right = {ROUTINE: {"scan/routine": 1.0, "vitals/routine": 1.0}, STAT: {"scan/stat": 1.0}}
    wrong = {ROUTINE: {"scan/routine": 2.0, "vitals/routine": 1.0}, STAT: {}}
    answered = Counter({ROUTINE: 2, STAT: 1})
    assert print_lanes(sent, right, ports, answered)
    assert not print_lanes(sent, wrong, ports, answered)
    assert "stat worker (:6067) served nothing - MISMATCH" in capsys.readouterr().out


def test_the_lane_check_fails_when_the_outcomes_name_another_lane(capsys) -> None:
    sent = published(TOPICS, [TOPICS["scans.stat"], TOPICS["vitals"]])
    served = {ROUTINE: {"vitals/routine": 1.0}, STAT: {"scan/stat": 1.0}}
    ports = {ROUTINE: 6066, STAT: 6067}
    assert not print_lanes(sent, served, ports, Counter({ROUTINE: 2}))
    assert not print_lanes(sent, served, ports, Counter({ROUTINE: 1, "?": 1}))  # one named none
    assert "answered: ? 1, routine 1 (published routine 1, stat 1) - MISMATCH" in (
        capsys.readouterr().out)


def test_the_demo_reads_the_lane_each_outcome_names() -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    pred = Prediction("e", "scan", None, "m", "1", {}, t, t, 1.0, lane=STAT)
    assert output_lane(pred, {}) == STAT
    assert output_lane(replace(pred, lane=None), {LANE_HEADER: b"stat"}) == "?"  # the field rules
    assert output_lane(None, {LANE_HEADER: b"routine"}) == ROUTINE  # a dead letter's header
    assert output_lane(None, {}) == "?"


def test_the_stat_sample_must_be_answered_from_the_stat_lane() -> None:
    answered = ("scan", STAT, STAT_SAMPLE, "brain_mri_tumour no_tumour 0.998", 12.0)
    assert stat_answered([answered])
    assert not stat_answered([(*answered[:1], ROUTINE, *answered[2:])])
    assert not stat_answered([("skip", STAT, STAT_SAMPLE, "skipped: rule (x)", 1.0)])


def test_stop_kills_what_the_supervisor_leaves_behind() -> None:
    """A 'supervisor' that exits on SIGTERM but leaves a child ignoring SIGTERM in its group:
    the stop reports it and no process of the group is left."""
    script = ("import signal, subprocess, sys, time\n"
              "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
              "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    child = _wait_child(proc.pid)
    assert sorted(supervisor.group_members(proc.pid)) == sorted([proc.pid, child])
    code, clean = supervisor.stop(proc)
    assert code == -15 and not clean
    assert supervisor.group_members(proc.pid) == []


def _wait_child(parent: int) -> int:
    """The pid of the first child of `parent` once it runs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        if children:
            time.sleep(0.5)  # let it install its SIGTERM handler
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("no child started")

