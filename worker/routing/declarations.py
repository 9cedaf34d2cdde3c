"""What each image model declares it is for, and the start-up check of the rules against it.

A model declares, in its config.pbtxt `parameters` (read from Triton at start-up):
`labels`, `modalities` (e.g. "CR,DX"), `body_parts` (e.g. "CHEST"), `input_format` (a
`worker.preprocess.formats` id) and `intended_use`. A route rule to a model is *allowed* when
the values of Modality its condition can admit are a known, finite set contained in the
model's `modalities`, and, when the model declares `body_parts`, likewise for
BodyPartExamined (docs/routing.md, "What a model allows"). The admitted set of a condition:
an `in` test on the attribute admits its values; `all` admits the intersection of what its
items bound; `any` the union, and only when every item bounds it; anything else (a regex, a
range, `not`, no test at all on the attribute) admits any value, so such a rule is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo
from worker.preprocess.formats import InputFormat, input_format
from worker.routing.rules import All, AnyOf, AttrTest, Condition, Route, RuleSet


def _codes(text: str) -> frozenset[str]:
    return frozenset(part.strip().upper() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Declaration:
    """The routing-relevant part of a model's config parameters."""

    model: str
    modalities: frozenset[str]
    body_parts: frozenset[str]  # empty: the model does not restrict the body part
    input_format: InputFormat
    intended_use: str
    version: str  # the `version` parameter, else Triton's version of the model

    @classmethod
    def of(cls, model: ModelInfo) -> Declaration:
        """Read it from `model.parameters`; ConfigurationError naming the model when unusable."""
        params = model.parameters
        modalities = _codes(params.get("modalities", ""))
        if not modalities:
            raise ConfigurationError(f"model {model.name!r} declares no 'modalities' parameter; "
                                     "an image model must say what it is for (docs/routing.md)")
        if "input_format" not in params:
            raise ConfigurationError(f"model {model.name!r} declares no 'input_format' parameter")
        try:
            fmt = input_format(params["input_format"])
        except KeyError as exc:
            raise ConfigurationError(f"model {model.name!r}: {exc.args[0]}") from exc
        return cls(model.name, modalities, _codes(params.get("body_parts", "")), fmt,
                   params.get("intended_use", ""),
                   params.get("version") or model.version.split("+", 1)[0])


def admitted(condition: Condition, keyword: str) -> frozenset[str] | None:
    """The values of `keyword` that `condition` can admit; None when it does not bound them."""
    if isinstance(condition, AttrTest):
        return frozenset(condition.values) if (
            condition.keyword == keyword and condition.op == "in") else None
    if isinstance(condition, All):
        bounds = [b for c in condition.items if (b := admitted(c, keyword)) is not None]
        return frozenset.intersection(*bounds) if bounds else None
    if isinstance(condition, AnyOf):
        bounds = [admitted(c, keyword) for c in condition.items]
        if any(b is None for b in bounds):
            return None
        return frozenset().union(*(b for b in bounds if b is not None))
    return None


def _allows(declared: frozenset[str], condition: Condition, keyword: str) -> str | None:
    """None when every value the condition admits is declared, else why not."""
    values = admitted(condition, keyword)
    if values is None:
        return f"its condition admits any {keyword} (bound it with `{keyword}: [...]`)"
    extra = sorted(values - declared)
    return f"it admits {keyword} {extra}" if extra else None


def check_rules(rules: RuleSet, models: Mapping[str, ModelInfo]) -> dict[str, Declaration]:
    """Every route rule allowed by its model's declaration (and its version pin); the
    declarations by model name. ConfigurationError naming the rule and its line otherwise."""
    declarations = {name: Declaration.of(models[name]) for name in rules.models}
    for rule in rules.rules:
        if not isinstance(rule.action, Route):
            continue
        declared = declarations[rule.action.model]
        problems = [_allows(declared.modalities, rule.when, "Modality")]
        if declared.body_parts:
            problems.append(_allows(declared.body_parts, rule.when, "BodyPartExamined"))
        for problem in problems:
            if problem is not None:
                raise ConfigurationError(
                    f"{rules.where(rule)} routes to {declared.model!r}, declared for modalities "
                    f"{sorted(declared.modalities)} and body parts "
                    f"{sorted(declared.body_parts) or 'any'}, but {problem}")
        if rule.action.version is not None and rule.action.version != declared.version:
            raise ConfigurationError(f"{rules.where(rule)} pins {declared.model!r} version "
                                     f"{rule.action.version!r}; Triton serves {declared.version!r}")
    return declarations
