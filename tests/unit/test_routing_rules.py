"""The routing rules file: loading (schema, lines, keywords, unreachable rules) and matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.contracts import SkipReason
from worker.routing import Router, RouteTo, RulesError, SkipAs, load_rules
from worker.routing.attributes import mapping_lookup
from worker.routing.matcher import holds, why_not
from worker.routing.rules import All, AttrTest

ROOT = Path(__file__).resolve().parents[2]
CT = "1.2.840.10008.5.1.4.1.1.2"
CR = "1.2.840.10008.5.1.4.1.1.1"
SR = "1.2.840.10008.5.1.4.1.1.88.33"


def rules_file(tmp_path: Path, text: str):
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str):
    return load_rules(rules_file(tmp_path, text))


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(RulesError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_the_shipped_rules_load_and_route_to_the_imported_models() -> None:
    rules = load_rules(ROOT / "triton_models/routing.yaml")
    assert rules.models == ("chest_xray_pneumonia", "brain_mri_tumour")
    assert rules.rules[0].name == "ignore-localizers" and rules.rules[0].line == 15


@pytest.mark.parametrize(("text", "line", "complaint"), [
    ("version: 1\nrules:\n  - name: a\n    when: {Modality: [CR\n", 5, "YAML syntax error"),
    ("version: 1\nrules:\n  - name: a\n    route: m\n    route: n\n", 5, "duplicate key 'route'"),
    ("version: 1\nrules:\n  - name: a\n    when:\n      Modalty: CT\n    skip: x\n", 5,
     "unknown DICOM keyword 'Modalty'"),
    ("version: 1\nrules:\n  - name: a\n    when: {Modality: CT}\n", 3, "is not valid under any"),
    ("version: 1\nrules:\n  - name: a\n    when: {Modality: CT}\n    skip: x\n    to: m\n", 3,
     "'to' was unexpected"),
    ("version: 2\nrules:\n  - {name: a, skip: x}\n", 1, "1 was expected"),
    (("version: 1\nrules:\n  - name: a\n    when:\n      SeriesDescription: {regex: '(t1'}\n"
     "    skip: x\n"), 5, "invalid regular expression"),
    ("version: 1\nrules:\n  - name: a\n    when:\n      SOPClassUID: CTImageStorge\n    skip: x\n",
     5, "unknown SOP class 'CTImageStorge'"),
    ("version: 1\nrules:\n  - name: a\n    when:\n      Rows: {min: 10, max: 2}\n    skip: x\n", 5,
     "min 10 is above max 2"),
    (("version: 1\nrules:\n  - name: a\n    when:\n      ReferencedImageSequence: {present: true}\n"
     "    skip: x\n"), 5, "is a sequence"),
    (("version: 1\nrules:\n  - {name: a, when: {Modality: CT}, skip: x}\n"
     "  - {name: a, when: {Modality: MR}, skip: y}\n"), 4, "already used on line 3"),
    ("", 1, "empty"),
])
def test_a_bad_rules_file_names_its_line(tmp_path: Path, text: str, line: int,
                                         complaint: str) -> None:
    message = refused(tmp_path, text)
    assert f"routing.yaml:{line}:" in message and complaint in message, message


def test_a_rule_after_a_catch_all_is_unreachable(tmp_path: Path) -> None:
    message = refused(tmp_path, "version: 1\nrules:\n  - name: everything\n    skip: all of it\n"
                                "  - name: chest\n    when: {Modality: CR}\n    route: m\n")
    assert "routing.yaml:5: rule 'chest' is unreachable: rule 'everything' (line 3)" in message


@pytest.mark.parametrize(("earlier", "later"), [
    ("{Modality: CT}", "{Modality: CT, BodyPartExamined: HEAD}"),
    ("{Modality: [CT, MR]}", "{Modality: MR}"),
    ("{Rows: {min: 100}}", "{Rows: {min: 200, max: 300}}"),
    ("{all: []}", "{Modality: CT}"),
])
def test_a_rule_an_earlier_rule_always_catches_is_unreachable(tmp_path: Path, earlier: str,
                                                              later: str) -> None:
    message = refused(tmp_path, f"version: 1\nrules:\n  - {{name: a, when: {earlier}, skip: x}}\n"
                                f"  - {{name: b, when: {later}, skip: y}}\n")
    assert "rule 'b' is unreachable" in message


def test_narrower_rules_before_broader_ones_are_fine(tmp_path: Path) -> None:
    rules = load(tmp_path, "version: 1\nrules:\n"
                           "  - {name: a, when: {Modality: CT, BodyPartExamined: HEAD}, skip: x}\n"
                           "  - {name: b, when: {Modality: CT}, skip: y}\n"
                           "  - {name: c, when: {any: [{Modality: MR}, {Modality: CT}]}, skip: z}\n")
    assert [r.name for r in rules.rules] == ["a", "b", "c"]


def test_an_unreadable_rules_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot be read"):
        load_rules(tmp_path / "missing.yaml")


# --- matching ------------------------------------------------------------------------------

RULES = """version: 1
rules:
  - name: localizer
    when: {ImageType: LOCALIZER}
    skip: localizer
  - name: chest
    when:
      Modality: [CR, DX]
      BodyPartExamined: chest
      ViewPosition: [PA, AP]
    route: chest_model
  - name: t1-post
    when:
      Modality: MR
      SeriesDescription: {regex: "t1.*post"}
      SliceThickness: {max: 5}
    route: brain_model
  - name: ct-or-big
    when:
      any:
        - Modality: CT
        - all: [{Rows: {min: 2000}}, {not: {Modality: MR}}]
    skip: no such model
"""


def decide(tmp_path: Path, **attributes: object):
    rules = load(tmp_path, RULES)
    attributes.setdefault("SOPClassUID", CR)
    return Router(rules).decide(mapping_lookup(attributes))


def test_the_first_rule_that_holds_decides(tmp_path: Path) -> None:
    chest = decide(tmp_path, Modality="CR", BodyPartExamined="CHEST", ViewPosition="PA")
    assert isinstance(chest, RouteTo) and (chest.model, chest.rule.name) == ("chest_model", "chest")
    scout = decide(tmp_path, Modality="CR", BodyPartExamined="CHEST", ViewPosition="PA",
                   ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    assert isinstance(scout, SkipAs) and (scout.reason, scout.rule.name) == (SkipReason.RULE, "localizer")


def test_values_compare_case_insensitively_and_trimmed(tmp_path: Path) -> None:
    assert isinstance(decide(tmp_path, Modality=" dx ", BodyPartExamined="Chest",
                             ViewPosition="ap"), RouteTo)


def test_regex_and_numeric_ranges(tmp_path: Path) -> None:
    base = {"Modality": "MR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.4"}
    assert isinstance(decide(tmp_path, **base, SeriesDescription="Ax T1 POST gad",
                             SliceThickness="3.0"), RouteTo)
    assert decide(tmp_path, **base, SeriesDescription="Ax T1 POST",
                  SliceThickness="6").reason is SkipReason.NO_ROUTE
    assert decide(tmp_path, **base, SeriesDescription="T2 flair",
                  SliceThickness="3").reason is SkipReason.NO_ROUTE


def test_any_all_and_not(tmp_path: Path) -> None:
    assert decide(tmp_path, Modality="CT", SOPClassUID=CT).rule.name == "ct-or-big"
    assert decide(tmp_path, Modality="XA", Rows=2048).rule.name == "ct-or-big"
    assert decide(tmp_path, Modality="MR", Rows=2048).reason is SkipReason.NO_ROUTE


def test_missing_or_malformed_attributes_read_as_absent(tmp_path: Path) -> None:
    assert decide(tmp_path, Modality="CR", ViewPosition="PA").reason is SkipReason.NO_ROUTE
    assert decide(tmp_path, Modality="XA", Rows="not a number").reason is SkipReason.NO_ROUTE
    absent = AttrTest("BodyPartExamined", "present", values=("false",))
    assert holds(absent, mapping_lookup({"BodyPartExamined": "  "}))


def test_non_image_sop_classes_are_skipped_before_any_rule(tmp_path: Path) -> None:
    for sop in (SR, "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.1.3.10", None):
        decision = decide(tmp_path, SOPClassUID=sop, Modality="CT")
        assert isinstance(decision, SkipAs) and decision.reason is SkipReason.NON_IMAGE, sop
        assert decision.rule is None


def test_sop_class_image_alias_and_keywords(tmp_path: Path) -> None:
    rules = load(tmp_path, "version: 1\nrules:\n"
                           "  - {name: cr, when: {SOPClassUID: ComputedRadiographyImageStorage}, skip: a}\n"
                           "  - {name: img, when: {SOPClassUID: image}, skip: b}\n")
    router = Router(rules)
    assert router.decide(mapping_lookup({"SOPClassUID": CR})).rule.name == "cr"
    assert router.decide(mapping_lookup({"SOPClassUID": CT})).rule.name == "img"


def test_why_not_names_the_failing_test_without_free_text(tmp_path: Path) -> None:
    rules = load(tmp_path, RULES)
    lookup = mapping_lookup({"Modality": "MR", "SeriesDescription": "Smith^John brain",
                             "SliceThickness": "3", "SOPClassUID": CR})
    chest, t1 = rules.rules[1].when, rules.rules[2].when
    assert why_not(chest, lookup) == "Modality is 'MR', wanted Modality in [CR, DX]"
    reason = why_not(t1, lookup)
    assert reason == "SeriesDescription is present, wanted SeriesDescription matches /t1.*post/"
    assert "Smith" not in reason
    assert why_not(All(()), lookup) is None
