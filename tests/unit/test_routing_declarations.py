"""Start-up checks of the rules against what each model declares it is for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.routing import declared_model
from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo
from worker.kinds.scan import check_scan_model
from worker.preprocess.formats import FORMATS
from worker.routing import Declaration, check_rules, load_rules
from worker.routing.declarations import admitted

CHEST = declared_model("chest")
BRAIN = declared_model("brain", modalities="MR", body_parts="BRAIN,HEAD",
                       input_format_id="rgb150_tf_nhwc", version="v7")


def rules(tmp_path: Path, when: str, route: str = "chest"):
    path = tmp_path / "routing.yaml"
    path.write_text(f"version: 1\nrules:\n  - name: r\n    when: {when}\n    route: {route}\n")
    return load_rules(path)


def check(tmp_path: Path, when: str, route: str = "chest") -> None:
    check_rules(rules(tmp_path, when, route), {"chest": CHEST, "brain": BRAIN})


@pytest.mark.parametrize("when", [
    "{Modality: [CR, DX], BodyPartExamined: CHEST}",
    "{Modality: DX, BodyPartExamined: [chest], ViewPosition: PA}",
    "{all: [{Modality: [CR, DX, MR]}, {Modality: [CR]}], BodyPartExamined: CHEST}",
    "{any: [{Modality: CR, BodyPartExamined: CHEST}, {Modality: DX, BodyPartExamined: CHEST}]}",
    "{Modality: CR, BodyPartExamined: CHEST, SeriesDescription: {regex: pa}}",
])
def test_rules_within_the_declaration_are_allowed(tmp_path: Path, when: str) -> None:
    check(tmp_path, when)


@pytest.mark.parametrize(("when", "complaint"), [
    ("{Modality: [CR, MR], BodyPartExamined: CHEST}", "it admits Modality ['MR']"),
    ("{BodyPartExamined: CHEST}", "admits any Modality"),
    ("{Modality: {regex: '^(CR|DX)$'}, BodyPartExamined: CHEST}", "admits any Modality"),
    ("{Modality: CR}", "admits any BodyPartExamined"),
    ("{Modality: CR, not: {BodyPartExamined: HEAD}}", "admits any BodyPartExamined"),
    ("{any: [{Modality: CR, BodyPartExamined: CHEST}, {ProtocolName: {regex: chest}}]}",
     "admits any Modality"),
    ("{Modality: CR, BodyPartExamined: [CHEST, ABDOMEN]}", "it admits BodyPartExamined ['ABDOMEN']"),
])
def test_rules_beyond_the_declaration_fail_start_up_naming_the_rule(
        tmp_path: Path, when: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check(tmp_path, when)
    message = str(info.value)
    assert "routing.yaml:3: rule 'r' routes to 'chest'" in message and complaint in message


def test_the_rules_file_of_an_mr_rule_cannot_route_to_a_cr_dx_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"admits Modality \['MR'\]"):
        check(tmp_path, "{Modality: MR, BodyPartExamined: CHEST}")
    check(tmp_path, "{Modality: MR, BodyPartExamined: [BRAIN, HEAD]}", route="brain")


def test_a_model_without_body_parts_is_not_restricted_by_them(tmp_path: Path) -> None:
    any_part = declared_model("chest", body_parts="")
    check_rules(rules(tmp_path, "{Modality: CR}"), {"chest": any_part})


def test_version_pins_compare_with_the_declared_version(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    when = "{Modality: MR, BodyPartExamined: HEAD}"
    path.write_text(f"version: 1\nrules:\n  - {{name: r, when: {when}, route: {{model: brain, version: v7}}}}\n")
    check_rules(load_rules(path), {"brain": BRAIN})
    path.write_text(f"version: 1\nrules:\n  - {{name: r, when: {when}, route: {{model: brain, version: v8}}}}\n")
    with pytest.raises(ConfigurationError, match="pins 'brain' version 'v8'; Triton serves 'v7'"):
        check_rules(load_rules(path), {"brain": BRAIN})


def test_declarations_must_name_modalities_and_a_known_input_format() -> None:
    with pytest.raises(ConfigurationError, match="'bare' declares no 'modalities'"):
        Declaration.of(ModelInfo("bare", "1", 4, ("a",)))
    odd = declared_model("odd")
    odd = ModelInfo(odd.name, odd.version, 4, odd.labels, {**odd.parameters, "input_format": "jpeg99"})
    with pytest.raises(ConfigurationError, match="model 'odd': .*unknown input_format 'jpeg99'"):
        Declaration.of(odd)
    assert Declaration.of(BRAIN).input_format is FORMATS["rgb150_tf_nhwc"]


def test_the_declared_input_format_must_produce_the_served_input_dims() -> None:
    check_scan_model(CHEST, {"probabilities": np.zeros((1, 2))})
    wrong = ModelInfo("chest", "1", 4, CHEST.labels, CHEST.parameters, {"image": (150, 150, 3)})
    with pytest.raises(ConfigurationError, match=r"declares input_format 'gray128' \(\[1, 128, 128\]\)"):
        check_scan_model(wrong, {"probabilities": np.zeros((1, 2))})
    with pytest.raises(ConfigurationError, match="returns 3 probabilities"):
        check_scan_model(CHEST, {"probabilities": np.zeros((1, 3))})


def test_admitted_sets(tmp_path: Path) -> None:
    when = rules(tmp_path, "{any: [{Modality: CR}, {Modality: [DX, CR]}], Rows: {min: 5}}").rules[0].when
    assert admitted(when, "Modality") == {"CR", "DX"}
    assert admitted(when, "BodyPartExamined") is None
