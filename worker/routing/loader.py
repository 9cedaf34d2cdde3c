"""Load a routing rules file: YAML (or JSON) -> schema check -> RuleSet, naming the line of
every problem.

The YAML is composed into a node tree first, so every key and item keeps its line; a syntax
error, a duplicate key, a schema violation, an unknown DICOM keyword (pydicom's dictionary), a
bad regular expression, an unknown SOP class, a duplicate rule name or an unreachable rule
(one that an earlier rule always catches first) raises `RulesError` as
"routing.yaml:12: rule 'chest': ...".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pydicom.uid
import yaml
from pydicom.datadict import dictionary_VR, tag_for_keyword

from worker.errors import ConfigurationError
from worker.routing.rules import (
    IMAGE,
    All,
    AnyOf,
    AttrTest,
    Condition,
    Not,
    Route,
    Rule,
    RuleSet,
    SkipAction,
)
from worker.routing.schema import RULES_SCHEMA

Path_ = tuple[str | int, ...]
_UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")
_VALIDATOR = jsonschema.Draft202012Validator(RULES_SCHEMA)


class RulesError(ConfigurationError):
    """The rules file cannot be used; the message names the file and line."""


def _lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], where: str) -> None:
    """Record the 1-based line of every key and item under `node`; refuse duplicate keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise RulesError(f"{where}:{key.start_mark.line + 1}: duplicate key {name!r}")
            seen.add(name)
            lines[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), lines, where)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), lines, where)


def parse(text: str, where: str) -> tuple[Any, dict[Path_, int]]:
    """The document and the line of each path in it; RulesError on a syntax error."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise RulesError(f"{where}:1: the rules file is empty")
            lines: dict[Path_, int] = {}
            _lines(node, (), lines, where)
            return loader.construct_document(node), lines
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise RulesError(f"{where}:{line}: YAML syntax error: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"{where}: YAML error: {exc}") from exc


def _line(lines: dict[Path_, int], path: Iterable[str | int]) -> int:
    """The line of `path`, else of its nearest ancestor that has one."""
    parts = tuple(path)
    while parts not in lines and parts:
        parts = parts[:-1]
    return lines.get(parts, 1)


def validate(document: Any, lines: dict[Path_, int], where: str) -> None:
    """Check `document` against RULES_SCHEMA; RulesError naming the line of the worst error."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(document))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise RulesError(f"{where}:{_line(lines, error.absolute_path)}: {at}: {error.message}")


class _Builder:
    """Builds the rules of a validated document, with the line of each problem."""

    def __init__(self, lines: dict[Path_, int], where: str) -> None:
        self.lines, self.where = lines, where

    def fail(self, path: Path_, message: str) -> RulesError:
        return RulesError(f"{self.where}:{_line(self.lines, path)}: {message}")

    def condition(self, spec: dict[str, Any], path: Path_) -> Condition:
        items: list[Condition] = []
        for key, value in spec.items():
            at = (*path, key)
            if key == "all":
                items.append(All(tuple(self.condition(c, (*at, i)) for i, c in enumerate(value))))
            elif key == "any":
                items.append(AnyOf(tuple(self.condition(c, (*at, i)) for i, c in enumerate(value))))
            elif key == "not":
                items.append(Not(self.condition(value, at)))
            else:
                items.append(self.test(key, value, at))
        return items[0] if len(items) == 1 else All(tuple(items))

    def test(self, keyword: str, spec: Any, path: Path_) -> AttrTest:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise self.fail(path, f"unknown DICOM keyword {keyword!r} (not in pydicom's data dictionary)")
        if dictionary_VR(tag) == "SQ":
            raise self.fail(path, f"{keyword} is a sequence; only plain attributes can be matched")
        if not isinstance(spec, dict):
            spec = {"in": spec if isinstance(spec, list) else [spec]}
        if "in" in spec:
            values = tuple(self.value(keyword, v, path) for v in spec["in"])
            return AttrTest(keyword, "in", values=values)
        if "regex" in spec:
            try:
                return AttrTest(keyword, "regex", pattern=re.compile(spec["regex"], re.IGNORECASE))
            except re.error as exc:
                raise self.fail(path, f"invalid regular expression for {keyword}: {exc}") from exc
        if "present" in spec:
            return AttrTest(keyword, "present", values=("true",) if spec["present"] else ("false",))
        low, high = spec.get("min"), spec.get("max")
        if low is not None and high is not None and low > high:
            raise self.fail(path, f"{keyword}: min {low} is above max {high}")
        return AttrTest(keyword, "range", low=low, high=high)

    def value(self, keyword: str, value: Any, path: Path_) -> str:
        text = str(value).strip()
        if keyword != "SOPClassUID":
            return text.upper()
        if text.lower() == IMAGE:
            return IMAGE
        if _UID.match(text):
            return text
        uid = getattr(pydicom.uid, text, None)
        if isinstance(uid, pydicom.uid.UID) and uid.type == "SOP Class":
            return str(uid)
        raise self.fail(path, f"unknown SOP class {text!r} (use a UID, a pydicom keyword such as "
                              f"CTImageStorage, or {IMAGE!r} for every image storage class)")

    def rule(self, spec: dict[str, Any], path: Path_) -> Rule:
        when = self.condition(spec["when"], (*path, "when")) if "when" in spec else All(())
        if "skip" in spec:
            action: Route | SkipAction = SkipAction(spec["skip"].strip())
        elif isinstance(spec["route"], str):
            action = Route(spec["route"])
        else:
            version = spec["route"].get("version")
            action = Route(spec["route"]["model"], None if version is None else str(version))
        return Rule(spec["name"], _line(self.lines, path), when, action)


def _conjuncts(condition: Condition) -> tuple[Condition, ...]:
    return condition.items if isinstance(condition, All) else (condition,)


def _implies(a: Condition, b: Condition) -> bool:
    """True when `a` holding guarantees that `b` holds (sound, not complete)."""
    if a == b:
        return True
    if not (isinstance(a, AttrTest) and isinstance(b, AttrTest) and a.keyword == b.keyword and a.op == b.op):
        return False
    if a.op == "in":
        return set(a.values) <= set(b.values)
    if a.op == "range":
        return ((b.low is None or (a.low is not None and a.low >= b.low))
                and (b.high is None or (a.high is not None and a.high <= b.high)))
    return False


def shadowed_by(rule: Rule, earlier: Rule) -> bool:
    """True when every instance `rule` matches is matched by `earlier` first."""
    return all(any(_implies(a, b) for a in _conjuncts(rule.when)) for b in _conjuncts(earlier.when))


def build(document: dict[str, Any], lines: dict[Path_, int], source: Path) -> RuleSet:
    """The RuleSet of a schema-valid document; RulesError for the semantic problems."""
    builder, where = _Builder(lines, str(source)), str(source)
    rules: list[Rule] = []
    for index, spec in enumerate(document["rules"]):
        rule = builder.rule(spec, ("rules", index))
        for other in rules:
            if other.name == rule.name:
                raise RulesError(f"{where}:{rule.line}: rule {rule.name!r}: the name is already "
                                 f"used on line {other.line}")
            if shadowed_by(rule, other):
                raise RulesError(f"{where}:{rule.line}: rule {rule.name!r} is unreachable: rule "
                                 f"{other.name!r} (line {other.line}) matches everything it matches")
        rules.append(rule)
    return RuleSet(source, tuple(rules))


def load_rules(path: Path) -> RuleSet:
    """Read, validate and build the rules file at `path` (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"routing rules {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    document, lines = parse(text, str(path))
    validate(document, lines, str(path))
    return build(document, lines, path)
