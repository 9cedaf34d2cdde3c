"""`medstream demo`'s full path: the worker as deployed by default (STAT lanes on), sample data in
(the brain MR on the STAT lane), live table with the lane each outcome names, summary, study
results, alerts, what each lane's worker served, clean stop, delivery to the local peers."""

from __future__ import annotations

import re

import pytest

from medstream_tools.demo.pipeline import run_pipeline_demo
from medstream_tools.ports import free_port
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_answers_every_sample_through_the_worker_and_delivers(settings: Settings, capsys) -> None:
    code = run_pipeline_demo(settings.model_copy(update={"web_port": free_port()}))
    out = capsys.readouterr().out
    assert code == 0, out
    answered, total, scans, vitals, skipped, dead = map(int, re.search(
        r"summary: (\d+)/(\d+) inputs answered - (\d+) scan and (\d+) vitals predictions, "
        r"(\d+) scan\(s\) skipped .*, (\d+) dead letter", out).groups())
    assert answered == total == scans + vitals + skipped + dead and dead == 1 and vitals == 9 + 10
    assert scans == 5 and skipped >= 6  # 2 radiographs + a 3-instance study, a brain MR; CT, ...
    assert re.search(r"^\s+\d+\s+scan\s+routine\s+RG1_UNCR\.dcm\s+chest_xray_pneumonia \w+ "
                     r"[01]\.\d{3}", out, re.MULTILINE)
    assert re.search(r"^\s+\d+\s+skip\s+routine\s+CT_small\.dcm\s+skipped: rule \(ct\)", out,
                     re.MULTILINE)
    assert re.search(r"^\s+\d+\s+skip\s+routine\s+test-SR\.dcm\s+skipped: non_image", out,
                     re.MULTILINE)
    assert re.search(r"^\s+\d+\s+dead\s+routine\s+demo-truncated\s+json_decode", out, re.MULTILINE)
    assert "dead letter: reason json_decode" in out
    assert re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms", out)

    # STAT lane: the brain MR (RequestedProcedurePriority STAT) is the one input on the STAT
    # lane, answered by the brain model; each lane's worker served exactly its lane's inputs
    rows = re.findall(r"^\s+\d+\s+\w+\s+(stat|routine)\s+(\S+)\s", out, re.MULTILINE)
    assert len(rows) == total and [event for lane, event in rows if lane == "stat"] == [
        "emri_small.dcm"]
    assert re.search(r"^\s+\d+\s+scan\s+stat\s+emri_small\.dcm\s+brain_mri_tumour \w+ [01]\.\d{3}",
                     out, re.MULTILINE)
    assert re.search(r"^  stat   : published scan 1 -> stat worker \(:\d+\) served scan 1 - ok$",
                     out, re.MULTILINE)
    routine = re.search(r"^  routine: published scan (\d+), vitals (\d+) -> routine worker "
                        r"\(:\d+\) served scan (\d+), vitals (\d+) - ok$", out, re.MULTILINE)
    assert routine and routine.group(1, 2) == routine.group(3, 4) == (str(total - vitals - dead - 1),
                                                                      str(vitals + dead))
    # ... and every outcome names the lane that served it (`lane` field, `worker.lane` header)
    assert re.search(r"^  answered: routine (\d+), stat 1 \(published routine \1, stat 1\) - ok$",
                     out, re.MULTILINE)
    assert re.search(r"^  STAT sample emri_small\.dcm \(RequestedProcedurePriority STAT\): "
                     r"brain_mri_tumour .* - served by the STAT lane$", out, re.MULTILINE)
    assert "worker stopped (exit 0): supervisor, routine and STAT worker all exited" in out

    # One final result per study (studies whose instances were all skipped get one too); the
    # studies with a prediction, the multi-instance study among them, are there
    studies = re.findall(r"^  study (\S+)\s+final \(quiet\) instances (\d+): (\d+) predicted", out,
                         re.MULTILINE)
    names = [name for name, _, _ in studies]
    assert len(names) == len(set(names))  # one final result per study
    assert {"RG1_UNCR.dcm", "emri_small.dcm", "study-RG1_UNCR.dcm"} <= set(names)
    assert ("study-RG1_UNCR.dcm", "3", "3") in studies
    assert re.search(r"^  study emri_small\.dcm\s+final .* \(lanes: stat 1\) - brain_mri_tumour", out,
                     re.MULTILINE)  # the study result counts the instance its STAT lane served
    assert re.search(r"^  study study-RG1_UNCR\.dcm\s+final .* \(lanes: routine 3\) - ", out,
                     re.MULTILINE)
    assert re.search(r"study-RG1_UNCR\.dcm .* chest_xray_pneumonia max normal=[01]\.\d{3}", out)
    assert re.search(r"^  alert raised: episode 1, risk 0\.[5-9]\d\d .* NEWS2 13 \(high\)", out,
                     re.MULTILINE)
    assert re.search(r"^  alert cleared: episode 1", out, re.MULTILINE)

    # Delivered: SR stored and valid, ORU acknowledged AA, FHIR Bundles accepted with 201s
    sr = re.search(r"sr   \(exit 0\): (\d+) SR stored in (\S+) - dciodvfy: no errors", out)
    assert sr and int(sr.group(1)) >= 2  # studies without a patient pseudonym are refused
    hl7 = re.search(r"hl7  \(exit 0\): (\d+) ORU\^R01 acknowledged AA, 0 refused", out)
    assert hl7 and int(hl7.group(1)) >= 4
    fhir = re.search(r"fhir \(exit 0\): (\d+) transaction Bundle\(s\) accepted, (\d+) resources "
                     r"created \(201\)", out)
    assert fhir and int(fhir.group(1)) >= 4 and int(fhir.group(2)) > 0
    assert out.count("refused to the delivery dead letter: study result without a patient "
                     "pseudonym") >= 3
