"""Clinical routing: which model serves each DICOM instance, decided from its header.

A versioned rules file (`MEDSTREAM_ROUTING__RULES`, default `triton_models/routing.yaml`,
shipped with the models) lists rules in order; the first whose condition on the instance's
attributes holds routes it to a model or skips it. Non-image SOP classes are skipped before
any rule, and an instance no rule matches is skipped as `no_route`. At start-up the rules are
validated (schema, DICOM keywords, unreachable rules) and checked against what each model
declares it is for. docs/routing.md is the reference.
"""

from worker.routing.declarations import Declaration, check_rules
from worker.routing.loader import RulesError, load_rules
from worker.routing.matcher import Decision, Router, RouteTo, SkipAs
from worker.routing.rules import Route, Rule, RuleSet, SkipAction

__all__ = ["Decision", "Declaration", "Route", "RouteTo", "Router", "Rule", "RuleSet",
           "RulesError", "SkipAction", "SkipAs", "check_rules", "load_rules"]
