"""`KindSpec`: everything the worker knows about one input kind, in one place.

A kind declares its settings block (`Settings.<name>`: topic, model, batching, size limit),
the tensors its model must take and return, how to build its pipeline description (decode +
preprocess, post-process), the topic configuration it needs and its start-up checks. A kind
with `routing` (scans) is served by the models its routing rules name instead of its
settings' `model` (worker/routing/). The
app, the start-up checks, topic creation and the test stacks iterate over the registry
(`worker.kinds.KINDS`) instead of naming scans and vitals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo, ModelSpec
from worker.lanes import ROUTINE
from worker.pipeline import Kind
from worker.routing import RuleSet
from worker.settings import KindSettings, Settings


def no_topic_configs(settings: Settings) -> dict[str, str]:
    """The broker's defaults are enough."""
    return {}


def no_check(model: ModelInfo, outputs: Mapping[str, np.ndarray]) -> None:
    """Nothing beyond the tensor contract and the test inference."""


@dataclass(frozen=True)
class KindSpec:
    """One input kind: `name` is the settings block, the `kind` label and Prediction.kind."""

    name: str
    model_spec: Callable[[str], ModelSpec]  # model name -> the tensors the worker exchanges
    # The pipeline description, given the kind's models by name (see `models`)
    build: Callable[[Settings, Mapping[str, ModelInfo]], Kind[Any]]
    topic_configs: Callable[[Settings], dict[str, str]] = no_topic_configs  # input topic's
    # Start-up check on the served model and its test inference's outputs; raises
    # ConfigurationError (e.g. the scan CNN's labels against its probabilities)
    check: Callable[[ModelInfo, Mapping[str, np.ndarray]], None] = no_check
    # The routing rules that pick each input's model (scans); None: the settings' one model
    routing: Callable[[Settings], RuleSet] | None = None

    def models(self, settings: Settings) -> tuple[str, ...]:
        """The models that serve this kind: those its routing rules name, else its settings'."""
        if self.routing is not None:
            return self.routing(settings).models
        return (self.settings(settings).model,)

    def settings(self, settings: Settings) -> KindSettings:
        """This kind's block of `settings` (a Settings subclass may add kinds)."""
        block = getattr(settings, self.name, None)
        if not isinstance(block, KindSettings):
            raise ConfigurationError(f"settings have no block for the {self.name!r} kind")
        return block


def _refuse_shared(what: str, names: list[str]) -> None:
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise ConfigurationError(f"input kinds share a {what}: {', '.join(shared)}")


def kind_topics(settings: Settings, kinds: Sequence[KindSpec]) -> list[str]:
    """Each kind's input topic, then its STAT topic where lanes are on (`stat_topics`);
    ConfigurationError when kinds share one."""
    topics = [spec.settings(settings).topic for spec in kinds]
    _refuse_shared("topic", topics + stat_topics(settings, kinds))
    return topics + stat_topics(settings, kinds)


def stat_topics(settings: Settings, kinds: Sequence[KindSpec]) -> list[str]:
    """The kinds' STAT topics (docs/lanes.md); none while lanes are off."""
    if not settings.lanes.enabled:
        return []
    return [t for spec in kinds if (t := spec.settings(settings).stat_topic)]


def lane_topic(settings: Settings, spec: KindSpec, lane: str) -> str | None:
    """The topic of `spec` that `lane` serves (None: the kind has no STAT lane)."""
    block = spec.settings(settings)
    return block.topic if lane == ROUTINE else (block.stat_topic if settings.lanes.enabled
                                                 else None)


def input_topics(settings: Settings, kinds: Sequence[KindSpec],
                 lane: str = ROUTINE) -> dict[str, str]:
    """Model name -> the topic of `lane` that feeds it (kinds without that lane left out);
    ConfigurationError when kinds share a topic or a model (reads the routing rules of kinds
    that route)."""
    kind_topics(settings, kinds)
    served = [(model, topic) for spec in kinds if (topic := lane_topic(settings, spec, lane))
              for model in spec.models(settings)]
    _refuse_shared("model", [model for model, _ in served])
    return dict(served)
