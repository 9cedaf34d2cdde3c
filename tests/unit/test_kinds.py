"""Input kinds as a registry, and their nested settings (with the flat names still read)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tests.support.fake_backend import build, prepare
from tests.support.routing import declared_model
from worker.app import create_app
from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
from worker.kinds import KINDS, KindSpec, default_models, input_topics
from worker.kinds.scan import SCAN, check_labels
from worker.lanes.settings import LaneSettings
from worker.pipeline import Kind
from worker.settings import LEGACY_NAMES, KindSettings, Settings
from worker.topics import topic_specs

# what start-up reads from Triton for the shipped routing rules (triton_models/routing.yaml)
MODELS = {"chest_xray_pneumonia": declared_model("chest_xray_pneumonia", max_batch=4,
                                                 input_format_id="rgb150_tf_nhwc"),
          "brain_mri_tumour": declared_model("brain_mri_tumour", modalities="MR",
                                             body_parts="BRAIN,HEAD", max_batch=4,
                                             input_format_id="rgb150_tf_nhwc"),
          "vitals_lstm": ModelInfo("vitals_lstm", "1", 64)}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MEDSTREAM_")]:
        monkeypatch.delenv(name)


def test_each_kind_has_its_defaults() -> None:
    s = Settings(_env_file=None)
    assert (s.scan.topic, s.scan.model, s.scan.max_batch, s.scan.within_s, s.scan.concurrency,
            s.scan.max_bytes, s.scan.uri_root) == ("scans", "scan_cnn", 32, 0.05, 1, 10 << 20, None)
    assert (s.vitals.topic, s.vitals.model, s.vitals.max_batch, s.vitals.within_s,
            s.vitals.concurrency, s.vitals.max_bytes) == ("vitals", "vitals_lstm", 64, 0.02, 1, 1 << 20)


def test_nested_variables_set_one_field_and_keep_the_other_defaults(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSTREAM_SCAN__MAX_BATCH", "8")
    monkeypatch.setenv("MEDSTREAM_VITALS__TOPIC", "vitals-x")
    s = Settings(_env_file=None)
    assert (s.scan.max_batch, s.scan.topic, s.scan.within_s) == (8, "scans", 0.05)
    assert (s.vitals.topic, s.vitals.max_batch) == ("vitals-x", 64)


LEGACY_VALUES = {"topic": "t-legacy", "model": "m-legacy", "max_batch": "7", "within_s": "0.5",
                 "concurrency": "3", "max_bytes": "4096", "uri_root": "/srv/claims",
                 "max_claimcheck_bytes": "8192"}


@pytest.mark.parametrize("legacy", sorted(LEGACY_NAMES))
def test_every_flat_name_is_still_read(legacy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kind, field = LEGACY_NAMES[legacy]
    monkeypatch.setenv(f"MEDSTREAM_{legacy.upper()}", LEGACY_VALUES[field])
    block = getattr(Settings(_env_file=None), kind)
    assert str(getattr(block, field)) == LEGACY_VALUES[field]


def test_the_nested_spelling_wins_over_the_flat_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSTREAM_SCAN_MAX_BATCH", "4")
    monkeypatch.setenv("MEDSTREAM_SCAN__MAX_BATCH", "8")
    monkeypatch.setenv("MEDSTREAM_TOPIC_VITALS", "flat")
    s = Settings(_env_file=None)
    assert (s.scan.max_batch, s.vitals.topic) == (8, "flat")


def test_flat_and_nested_keyword_arguments() -> None:
    s = Settings(_env_file=None, scan_max_batch=4, topic_vitals="v", scan={"within_s": 0.1})
    assert (s.scan.max_batch, s.scan.within_s, s.vitals.topic) == (4, 0.1, "v")


def test_kind_settings_are_validated_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="scan.max_batch"):
        Settings(_env_file=None, scan={"max_batch": 0})
    monkeypatch.setenv("MEDSTREAM_VITALS__MAX_BATCHES", "8")
    with pytest.raises(ValidationError, match="vitals.max_batches"):
        Settings(_env_file=None)
    monkeypatch.delenv("MEDSTREAM_VITALS__MAX_BATCHES")
    s = Settings(_env_file=None)
    with pytest.raises(ValidationError):
        s.scan.max_batch = 3  # type: ignore[misc]


def test_registry_and_default_models() -> None:
    assert [k.name for k in KINDS] == ["scan", "vitals"]
    assert default_models() == ("scan_cnn", "vitals_lstm")
    assert input_topics(Settings(_env_file=None), KINDS) == {
        "chest_xray_pneumonia": "scans", "brain_mri_tumour": "scans", "vitals_lstm": "vitals"}


def test_kinds_may_share_neither_a_topic_nor_a_model() -> None:
    with pytest.raises(ConfigurationError, match="share a model: brain_mri_tumour"):
        input_topics(Settings(_env_file=None, vitals={"model": "brain_mri_tumour"}), KINDS)
    with pytest.raises(ConfigurationError, match="share a topic: scans"):
        input_topics(Settings(_env_file=None, vitals={"topic": "scans"}), KINDS)


def test_scan_start_up_check_compares_labels_and_probabilities() -> None:
    chest = MODELS["chest_xray_pneumonia"]
    check_labels(chest, {"probabilities": np.zeros((1, 2))})
    with pytest.raises(ConfigurationError, match="returns 3 probabilities"):
        check_labels(chest, {"probabilities": np.zeros((1, 3))})
    with pytest.raises(ConfigurationError, match="no 'labels' parameter"):
        check_labels(ModelInfo("scan_cnn", "1", 16), {"probabilities": np.zeros((1, 2))})
    with pytest.raises(ConfigurationError, match="declares no 'modalities'"):
        SCAN.check(ModelInfo("scan_cnn", "1", 16, ("a", "b")), {"probabilities": np.zeros((1, 2))})


# --- a third kind, as a plugin would add one ----------------------------------------------


class ToySettings(Settings):
    echo: KindSettings = KindSettings(topic="echo", model="echo_m", max_batch=4, within_s=0.01)


def _echo_kind(settings: Settings, models: Mapping[str, ModelInfo]) -> Kind[str]:
    return Kind("echo", models, "x", ECHO.settings(settings).max_bytes, prepare, build)


ECHO = KindSpec(name="echo", build=_echo_kind, topic_configs=lambda s: {"retention.ms": "60000"},
                model_spec=lambda name: ModelSpec(name, (TensorSpec("x", "FP32", (2,)),), ()))


def test_a_kind_without_a_settings_block_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no block for the 'echo' kind"):
        ECHO.settings(Settings(_env_file=None))


def test_topics_and_app_follow_the_kinds(tmp_path: Path) -> None:
    settings = ToySettings(_env_file=None, kafka_bootstrap="127.0.0.1:9", web_port=6999,
                           state_dir=tmp_path, app_id="unit-kinds")
    kinds = (*KINDS, ECHO)
    specs = {t.name: t.topic_configs for t in topic_specs(settings, kinds)}
    # a kind without a stat_topic (echo) has no STAT lane
    assert list(specs) == ["scans", "scans.stat", "vitals", "vitals.stat", "echo", "predictions",
                           "deadletter"]
    assert specs["echo"] == {"retention.ms": "60000"} and specs["vitals.stat"] == {}
    models = MODELS | {"echo_m": ModelInfo("echo_m", "1", 8)}
    app = create_app(settings, models, kinds=kinds)
    assert sorted(app.agents) == ["medstream.echo", "medstream.scan", "medstream.vitals"]
    stat = settings.model_copy(update={"lanes": LaneSettings(process="stat")})
    app = create_app(stat, models, kinds=kinds)
    assert sorted(app.agents) == ["medstream.scan", "medstream.vitals"]
    assert {a.channel.get_topic_name() for a in app.agents.values()} == {"scans.stat",
                                                                         "vitals.stat"}
