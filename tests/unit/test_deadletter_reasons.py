"""DeadLetterReason: one enumeration, documented in one table, every series exported from start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.errors import PRODUCERS, SCAN, VITALS, DeadLetterReason, PoisonMessage, reasons_for
from worker.metrics import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "worker.md"


def _docs_table() -> dict[str, tuple[str, str]]:
    """reason -> (kinds, meaning) from the "Dead-letter reasons" section of docs/worker.md."""
    section = DOCS.read_text(encoding="utf-8").split("\n## Dead-letter reasons\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \| ([^|]+) \| [^|]+ \|$", section, re.MULTILINE)
    assert len(rows) == len({r for r, _, _ in rows}), "a reason is listed twice"
    return {reason: (kinds.strip(), meaning.strip()) for reason, kinds, meaning in rows}


def test_docs_table_lists_exactly_the_enum() -> None:
    table = _docs_table()
    assert set(table) == {r.value for r in DeadLetterReason}
    for reason in DeadLetterReason:
        assert table[reason.value] == (", ".join(reason.kinds), reason.meaning), reason


def test_values_are_stable_label_slugs() -> None:
    for reason in DeadLetterReason:
        assert reason == reason.value and str(reason) == f"{reason}" == reason.value
        assert reason.value.isidentifier() and reason.value.islower()
        assert reason.kinds and set(reason.kinds) <= {SCAN, VITALS, PRODUCERS} and reason.meaning
    assert len(DeadLetterReason) == 27


def test_poison_message_refuses_free_strings() -> None:
    with pytest.raises(TypeError):
        PoisonMessage("shape", "free text")  # type: ignore[arg-type]
    error = PoisonMessage(DeadLetterReason.SHAPE, "bad")
    assert error.reason is DeadLetterReason.SHAPE and str(error) == "bad"


def test_every_kind_reason_series_is_exported_at_zero() -> None:
    metrics = Metrics.create()
    metrics.preinitialise([("scan", "scan_cnn"), ("vitals", "vitals_lstm")])
    samples = {(s.labels["kind"], s.labels["reason"]): s.value
               for s in metrics.deadletters.collect()[0].samples if s.name.endswith("_total")}
    expected = {(kind, r.value) for kind in (SCAN, VITALS) for r in reasons_for(kind)}
    assert set(samples) == expected and not any(samples.values())
    assert ("vitals", "all_missing") in samples and ("scan", "uri_refused") in samples
    assert not any(reason == "not_dicom" for _, reason in samples)  # producers only
