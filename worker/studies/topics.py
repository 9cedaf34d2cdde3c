"""The topics of study results and alerts (created with the others by `medstream topics` when
`MEDSTREAM_STUDIES__ENABLED=true`)."""

from __future__ import annotations

from kafka.admin import NewTopic

from worker.settings import Settings


def study_topic_specs(settings: Settings) -> list[NewTopic]:
    """Internal re-keyed topics, then results (log-compacted: a reader sees each study's
    latest revision) and alerts; none while the feature is disabled. The faust tables'
    changelogs are created by faust."""
    s, n = settings.studies, settings.topic_partitions
    if not s.enabled:
        return []
    return [
        NewTopic(s.events_topic, n, 1),
        NewTopic(s.risk_topic, n, 1),
        NewTopic(s.topic, n, 1, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(s.alerts_topic, n, 1),
    ]
