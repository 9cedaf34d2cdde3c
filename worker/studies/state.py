"""Pure study aggregation: one JSON-ready dict per StudyInstanceUID (the faust table's value).

`apply_instance` folds one instance outcome into the study's state; `due` says whether the
study should be answered now (quiet, or forced); `close` turns it into the next revision of its
`medstream.study/v1` result. The functions update the state dict they are given (the caller
owns it) and return it. Times in the state are epoch seconds: `first_seen`/`last_seen`
come from the outcomes' Kafka timestamps, `result_at` from the worker clock; event (DICOM)
times are only reported, never used for timing. Memory per study (measured, 5 series, one
model, top 5): ~2 KB plus ~90 bytes per instance in the worker (a 64-bit digest of each
SOPInstanceUID, kept to drop re-deliveries), ~1 KB plus ~24 bytes per instance as JSON in the
changelog: 1,000 instances ~95 KB / 25 KB (docs/studies.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.contracts import StudyEvent, StudyResult
from worker.settings import StudySettings

State = dict[str, Any]
DIGITS = 6


@dataclass(frozen=True)
class Rules:
    """When a study is complete (defaults, or the routes of the models that answered it)."""

    quiet_s: float
    max_s: float
    required_modalities: frozenset[str]


def rules_for(state: State, settings: StudySettings) -> Rules:
    """The study's rules: the longest timers and every required modality of its routes."""
    routes = [settings.routes[m["model"]] for m in main_group(state)[1]["models"].values()
              if m["model"] in settings.routes]
    return Rules(
        quiet_s=max([settings.quiet_s, *(r.quiet_s for r in routes if r.quiet_s)]),
        max_s=max([settings.max_s, *(r.max_s for r in routes if r.max_s)]),
        required_modalities=frozenset(settings.required_modalities).union(
            *(r.required_modalities for r in routes)),
    )


def digest(sop_uid: str) -> str:
    """The 64-bit digest under which an instance is remembered (deduplication)."""
    return hashlib.blake2b(sop_uid.encode("utf-8"), digest_size=8).hexdigest()


def new_state(study_uid: str, partition: int, event: StudyEvent) -> State:
    """An empty study, opened by `event`."""
    return {
        "study_uid": study_uid, "partition": partition,
        "first_seen": event.seen_at.timestamp(), "last_seen": event.seen_at.timestamp(),
        "sops": {}, "patients": {}, "anomalies": {},
        "revision": 0, "pending": False, "result_at": None,
    }


def _new_group() -> dict[str, Any]:
    return {"n": 0, "study_time": None, "series": {}, "models": {},
            "reasons": {"skipped": {}, "dead_lettered": {}}, "lanes": {}}


def main_group(state: State) -> tuple[str, dict[str, Any]]:
    """(patient pseudonym or "", aggregates) of the patient with the most instances (ties: the
    smallest pseudonym), whatever order the instances arrived in."""
    if not state["patients"]:
        return "", _new_group()
    patient = min(state["patients"], key=lambda p: (-state["patients"][p]["n"], p))
    return patient, state["patients"][patient]


def _count(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def _add_prediction(group: dict[str, Any], event: StudyEvent, top_k: int) -> None:
    key = f"{event.model}@{event.model_version}"
    model = group["models"].setdefault(key, {
        "model": event.model, "model_version": event.model_version, "n": 0,
        "sum": {}, "max": {}, "top": {}})
    model["n"] += 1
    for label, p in event.probabilities.items():
        model["sum"][label] = model["sum"].get(label, 0.0) + p
        model["max"][label] = max(model["max"].get(label, 0.0), p)
        top = [*model["top"].get(label, []), [p, event.sop_uid]]
        top.sort(key=lambda entry: (-entry[0], entry[1]))
        model["top"][label] = top[:top_k]


def apply_instance(state: State | None, event: StudyEvent, partition: int,
                   settings: StudySettings) -> tuple[State, list[str]]:
    """Fold one outcome into its study; returns the new state and the anomalies it showed.

    A re-delivered instance (same SOPInstanceUID) changes nothing (anomaly `duplicate`).
    Instances are aggregated per patient: the result reports the patient with the most
    instances, and the others' instances as `patient_mismatch` (an instance without a patient
    id is a patient of its own). An event time further than `clock_skew_s` ahead of the
    outcome is not used as the study time (`clock_skew`). Beyond `max_instances` instances
    are aggregated without being remembered (`over_capacity`: re-deliveries count twice).
    """
    state = state if state is not None else new_state(event.study_uid, partition, event)
    anomalies: list[str] = []
    key = digest(event.sop_uid)
    if key in state["sops"]:
        return state, ["duplicate"]
    if len(state["sops"]) < settings.max_instances:
        state["sops"][key] = 1
    else:
        anomalies.append("over_capacity")
    group = state["patients"].setdefault(event.patient_id or "", _new_group())
    _aggregate(state, group, event, settings, anomalies)
    if main_group(state)[1] is not group:
        anomalies.append("patient_mismatch")
    for anomaly in anomalies:
        if anomaly != "patient_mismatch":  # reported per result, from the final majority
            _count(state["anomalies"], anomaly)
    return state, anomalies


def _aggregate(state: State, group: dict[str, Any], event: StudyEvent,
               settings: StudySettings, anomalies: list[str]) -> None:
    seen = event.seen_at.timestamp()
    state["first_seen"] = min(state["first_seen"], seen)
    state["last_seen"] = max(state["last_seen"], seen)
    state["pending"] = True
    group["n"] += 1
    if event.event_time is not None:
        moment = event.event_time.timestamp()
        if moment > seen + settings.clock_skew_s:
            anomalies.append("clock_skew")
        elif group["study_time"] is None or moment < group["study_time"]:
            group["study_time"] = moment
    series = group["series"].setdefault(event.series_uid or "", {
        "modality": event.modality, "predicted": 0, "skipped": 0, "dead_lettered": 0})
    series["modality"] = series["modality"] or event.modality
    series[event.outcome] += 1
    if event.lane is not None:  # a state from before lanes were recorded has no "lanes"
        _count(group.setdefault("lanes", {}), event.lane)
    if event.outcome == "predicted":
        _add_prediction(group, event, settings.top_k)
    else:
        _count(group["reasons"][event.outcome], event.reason or "unknown")


def _modalities(group: dict[str, Any]) -> set[str]:
    return {s["modality"] for s in group["series"].values() if s["modality"]}


def due(state: State, now: float, active_since: float, settings: StudySettings) -> str | None:
    """`quiet` or `forced` when the study's next revision is due at `now`, else None.

    Quiet: no new instance for `quiet_s` since the last one, counted from no earlier than
    `active_since` (when this worker took the partition over: upstream may still be
    re-serving instances) and only once every required modality has a series. Forced:
    `max_s` after the first instance (or after the last result, for an amendment).
    """
    if not state["pending"]:
        return None
    rules = rules_for(state, settings)
    since = state["result_at"] if state["result_at"] is not None else state["first_seen"]
    if now >= since + rules.max_s:
        return "forced"
    quiet = now >= max(state["last_seen"], active_since) + rules.quiet_s
    present = _modalities(main_group(state)[1])
    return "quiet" if quiet and rules.required_modalities <= present else None


def expired(state: State, now: float, settings: StudySettings) -> bool:
    """True once a closed study has had no new instance for `retain_s` after its result."""
    return (not state["pending"] and state["result_at"] is not None
            and now >= state["result_at"] + settings.retain_s)


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _models(models: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{
        "model": m["model"], "model_version": m["model_version"], "instances": m["n"],
        "probabilities": {label: {"max": round(m["max"][label], DIGITS),
                                  "mean": round(total / m["n"], DIGITS)}
                          for label, total in sorted(m["sum"].items())},
        "top": {label: [{"sop_uid": sop, "probability": p} for p, sop in top]
                for label, top in sorted(m["top"].items())},
    } for m in sorted(models, key=lambda m: (m["model"], m["model_version"]))]


def close(state: State, completion: str, now: float,
          settings: StudySettings) -> tuple[State, StudyResult]:
    """The study's next revision (final, then amended) and its state after answering. A study
    with another patient's instances is never `complete`."""
    rules = rules_for(state, settings)
    patient, group = main_group(state)
    others = sum(g["n"] for p, g in state["patients"].items() if p != patient)
    anomalies = {**state["anomalies"], **({"patient_mismatch": others} if others else {})}
    missing = sorted(rules.required_modalities - _modalities(group))
    series = [{"series_uid": uid or None, **counts}
              for uid, counts in sorted(group["series"].items())]
    totals = {o: sum(s[o] for s in series) for o in ("predicted", "skipped", "dead_lettered")}
    state = {**state, "revision": state["revision"] + 1, "pending": False, "result_at": now}
    result = StudyResult(
        study_uid=state["study_uid"], revision=state["revision"],
        completion="forced" if completion == "forced" else "quiet",
        complete=completion == "quiet" and not missing and not others,
        patient_id=patient or None, instances={"total": sum(totals.values()), **totals},
        series=series, models=_models(group["models"].values()),
        reasons={k: dict(sorted(v.items())) for k, v in group["reasons"].items()},
        anomalies=dict(sorted(anomalies.items())), missing_required=missing,
        study_time=None if group["study_time"] is None else _when(group["study_time"]),
        first_seen=_when(state["first_seen"]), last_seen=_when(state["last_seen"]),
        produced_at=_when(now), lanes=dict(sorted(group.get("lanes", {}).items())),
    )
    return state, result
