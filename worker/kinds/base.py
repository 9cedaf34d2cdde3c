"""`KindSpec`: everything the worker knows about one input kind, in one place.

A kind declares its settings block (`Settings.<name>`: topic, model, batching, size limit),
the tensors its model must take and return, how to build its pipeline description (decode +
preprocess, post-process), the topic configuration it needs and its start-up checks. The
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
from worker.pipeline import Kind
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
    build: Callable[[Settings, ModelInfo], Kind[Any]]  # the pipeline description
    topic_configs: Callable[[Settings], dict[str, str]] = no_topic_configs  # input topic's
    # Start-up check on the served model and its test inference's outputs; raises
    # ConfigurationError (e.g. the scan CNN's labels against its probabilities)
    check: Callable[[ModelInfo, Mapping[str, np.ndarray]], None] = no_check

    def settings(self, settings: Settings) -> KindSettings:
        """This kind's block of `settings` (a Settings subclass may add kinds)."""
        block = getattr(settings, self.name, None)
        if not isinstance(block, KindSettings):
            raise ConfigurationError(f"settings have no block for the {self.name!r} kind")
        return block


def input_topics(settings: Settings, kinds: Sequence[KindSpec]) -> dict[str, str]:
    """Model name -> input topic, one per kind; ConfigurationError when kinds share either."""
    blocks = [spec.settings(settings) for spec in kinds]
    for what in ("model", "topic"):
        names = [getattr(block, what) for block in blocks]
        shared = sorted({n for n in names if names.count(n) > 1})
        if shared:
            raise ConfigurationError(f"input kinds share a {what}: {', '.join(shared)}")
    return {block.model: block.topic for block in blocks}
