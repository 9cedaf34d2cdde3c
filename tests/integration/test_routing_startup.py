"""`medstream worker` refuses rules it cannot honour against the real Triton: exit code 2 and
one line naming the rules file, line and rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medstream_tools.soak.worker import ROOT
from tests.support.harness import Topics
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.settings import Settings

pytestmark = pytest.mark.integration


def start_with_rules(worker: WorkerProcess, tmp_path: Path, rules: str) -> str:
    path = tmp_path / "routing.yaml"
    path.write_text(f"version: 1\nrules:\n{rules}")
    done = subprocess.run([sys.executable, "-m", "worker.cli", "worker"], cwd=ROOT, check=False,
                          env={**worker.env(), "MEDSTREAM_ROUTING__RULES": str(path)},
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 2, done.stderr[-2000:]
    return done.stderr


@pytest.fixture
def worker(settings: Settings, topic_factory, tmp_path: Path) -> WorkerProcess:
    return WorkerProcess(settings, Topics.create(topic_factory, partitions=1), tmp_path / "w")


def test_a_rule_naming_a_model_triton_does_not_serve(worker: WorkerProcess, tmp_path: Path) -> None:
    err = start_with_rules(worker, tmp_path, "  - name: ct-model\n    when: {Modality: CT}\n"
                                             "    route: no_such_ct_model\n")
    assert "routing.yaml:3: rule 'ct-model' routes to model 'no_such_ct_model', which Triton" in err


def test_a_rule_beyond_the_models_declaration(worker: WorkerProcess, tmp_path: Path) -> None:
    err = start_with_rules(worker, tmp_path, "  - name: mr-to-chest\n"
                                             "    when: {Modality: [CR, MR], BodyPartExamined: CHEST}\n"
                                             "    route: scan_cnn\n")
    assert "routing.yaml:3: rule 'mr-to-chest' routes to 'scan_cnn'" in err
    assert "it admits Modality ['MR']" in err


def test_an_unreachable_rule_names_its_line(worker: WorkerProcess, tmp_path: Path) -> None:
    err = start_with_rules(worker, tmp_path, "  - name: all-ct\n    when: {Modality: CT}\n"
                                             "    skip: no CT model\n"
                                             "  - name: head-ct\n"
                                             "    when: {Modality: CT, BodyPartExamined: HEAD}\n"
                                             "    skip: never reached\n")
    assert "routing.yaml:6: rule 'head-ct' is unreachable: rule 'all-ct' (line 3)" in err
