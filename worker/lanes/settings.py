"""`LaneSettings`: the STAT lanes block of the settings (`MEDSTREAM_LANES__<FIELD>`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LaneSettings(BaseModel):
    """STAT lanes (`MEDSTREAM_LANES__<FIELD>`, docs/lanes.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Off: no STAT process, no STAT topics needed, producers publish everything routine
    enabled: bool = True
    # What this process serves: `auto` (`medstream worker`: the routine worker(s) and, with
    # lanes on, a STAT worker as child processes), or one lane only (what the supervisor sets
    # for its children; also a way to run the lanes as separate deployments)
    process: Literal["auto", "routine", "stat"] = "auto"
    # The STAT process keeps its duty cycle at or below weight / (weight + 1) of wall time while
    # it has work, so routine keeps >= 1 / (weight + 1) of the machine and of Triton
    stat_weight: int = Field(2, ge=1, le=100)
    # Producer rules: an event is STAT when every DICOM keyword of one rule matches (fnmatch,
    # case-insensitive), e.g. [{"Modality": "CT", "BodyPartExamined": "HEAD",
    # "RequestingService": "EMERG*"}]
    stat_rules: tuple[dict[str, str], ...] = ()
