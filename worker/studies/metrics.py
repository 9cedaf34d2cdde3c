"""Metrics of study results and alerts, on the worker's registry (base units, bounded labels).

Labels: `table` in {studies, alerts}; `status`, `completion`, `outcome`, `anomaly` and `reason`
take the documented values of docs/studies.md. Never a study, patient or instance identifier.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.contracts.alert import ALERT_STATUSES
from worker.contracts.study import OUTCOMES
from worker.studies.feed import Unattributed

COMPLETION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200)
RESTORE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STUDY_ANOMALIES = ("patient_mismatch", "clock_skew", "over_capacity", "malformed")
ALERT_ANOMALIES = ("stale", "clock_skew", "malformed")


@dataclass(frozen=True)
class StudyMetrics:
    """Every metric of worker/studies and worker/alerts."""

    open_studies: Gauge
    state_entries: Gauge
    study_results: Counter
    study_completion_seconds: Histogram
    study_instances: Counter
    alerts: Counter
    anomalies: Counter
    unattributed: Counter
    restore_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StudyMetrics:
        """Register the metrics on `registry`, every series exported at zero."""
        p = "medstream_"
        m = cls(
            open_studies=Gauge(p + "open_studies", "Studies awaiting their next result on this "
                               "worker's partitions", registry=registry),
            state_entries=Gauge(p + "state_entries", "Keys held in a state table on this "
                                "worker's partitions", ["table"], registry=registry),
            study_results=Counter(p + "study_results", "Study results produced",
                                  ["status", "completion"], registry=registry),
            study_completion_seconds=Histogram(
                p + "study_completion_seconds", "Last instance outcome to the study result",
                buckets=COMPLETION_BUCKETS, registry=registry),
            study_instances=Counter(p + "study_instances", "Instance outcomes folded into studies",
                                    ["outcome"], registry=registry),
            alerts=Counter(p + "alerts", "Alert records produced", ["status"],
                           registry=registry),
            anomalies=Counter(p + "state_anomalies", "Events a state table handled specially "
                              "(docs/studies.md)", ["table", "anomaly"], registry=registry),
            unattributed=Counter(p + "study_unattributed", "Outcomes that feed no study or "
                                 "alert", ["reason"], registry=registry),
            restore_seconds=Histogram(p + "state_restore_seconds", "Partition assignment to "
                                      "the state table restored from its changelog", ["table"],
                                      buckets=RESTORE_BUCKETS, registry=registry),
        )
        for status in ("final", "amended"):
            for completion in ("quiet", "forced"):
                m.study_results.labels(status, completion)
        for outcome in (*OUTCOMES, "duplicate"):
            m.study_instances.labels(outcome)
        for status in ALERT_STATUSES:
            m.alerts.labels(status)
        for table, anomalies in (("studies", STUDY_ANOMALIES), ("alerts", ALERT_ANOMALIES)):
            m.state_entries.labels(table)
            m.restore_seconds.labels(table)
            for anomaly in anomalies:
                m.anomalies.labels(table, anomaly)
        for reason in Unattributed:
            m.unattributed.labels(reason.value)
        return m
