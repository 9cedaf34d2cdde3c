"""What the targets deliver: one model's result for one study revision, or one alert.

These are the delivery side's own views, built from the decoded `medstream.study/v1` and
`medstream.alert/v1` records by `medstream_delivery.adapter`; the builders of every target
read only these, so a schema change touches the adapter alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

StudyStatus = Literal["final", "amended"]
AlertState = Literal["raised", "updated", "cleared", "expired"]


@dataclass(frozen=True)
class Finding:
    """One class of a model over the study's instances: the highest instance probability
    (the study-level value every target reports first) and the mean (0..1)."""

    label: str
    probability: float  # max over the instances
    mean: float | None = None


@dataclass(frozen=True)
class ImageRef:
    """A source instance the result rests on."""

    series_uid: str
    sop_uid: str
    sop_class_uid: str


@dataclass(frozen=True)
class StudyReport:
    """One model's result for one revision of one study: each target delivers it once."""

    study_uid: str
    patient: str  # the patient pseudonym carried on the topic
    status: StudyStatus
    revision: int  # 1 = final, then amended 2, 3, ...
    complete: bool  # False: forced by the timeout or a required series missing (preliminary)
    model: str
    model_version: str
    findings: tuple[Finding, ...]  # non-empty
    images: tuple[ImageRef, ...]  # the instances that carry the result (may be empty)
    instances: int  # instances predicted by this model
    study_time: datetime | None
    produced_at: datetime

    @property
    def conclusion(self) -> Finding:
        """The class with the highest instance probability (ties: the first listed)."""
        return max(self.findings, key=lambda f: f.probability)


@dataclass(frozen=True)
class AlertReport:
    """One `medstream.alert/v1` transition of a patient's alert episode."""

    patient: str
    episode: str  # names the episode among the patient's (the alert id)
    state: AlertState
    sequence: int  # increases within the episode: raised 0, then 1, 2, ...
    risk: float  # the model's risk (0..1) for the window of this record
    news2: int | None  # the NEWS2 total of the same window (None: a parameter is missing)
    news2_band: str | None
    news2_subscores: tuple[tuple[str, int], ...]  # (parameter, points) of the NEWS2 chart
    model: str
    model_version: str
    event_time: datetime  # time of the window's last sample
    produced_at: datetime


Report = StudyReport | AlertReport
