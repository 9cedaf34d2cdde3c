"""The input kinds the worker serves: one module each, listed in `KINDS`.

Functions that serve kinds (`create_app`, `check_triton`, `check_kafka`, `topic_specs`) take
`kinds` and default to `KINDS`; a plugin or a test passes its own tuple (docs/worker.md,
"Adding a kind or a model").
"""

from __future__ import annotations

from worker.kinds.base import KindSpec, input_topics, kind_topics, lane_topic, stat_topics
from worker.kinds.scan import SCAN
from worker.kinds.vitals import VITALS
from worker.settings import Settings

KINDS: tuple[KindSpec, ...] = (SCAN, VITALS)


def default_models(kinds: tuple[KindSpec, ...] = KINDS) -> tuple[str, ...]:
    """The model of each kind's default settings (for a kind that routes, scans, the models
    come from its routing rules instead: `KindSpec.models`)."""
    defaults = Settings.model_construct()
    return tuple(spec.settings(defaults).model for spec in kinds)


__all__ = ["KINDS", "KindSpec", "default_models", "input_topics", "kind_topics", "lane_topic",
           "stat_topics"]
