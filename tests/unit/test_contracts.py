"""worker.contracts: every schema round-trips, and no other code builds these messages by hand."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.contracts import (
    CHANNELS,
    PREDICTION_SCHEMA,
    SCAN_SCHEMA,
    VITALS_SCHEMA,
    Prediction,
    ScanEnvelope,
    VitalsWindow,
    decode_prediction,
    decode_scan_envelope,
    decode_vitals,
    encode_prediction,
    encode_scan_envelope,
    encode_vitals,
)

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
WIRE_LITERAL = re.compile(r"medstream\.(scan|vitals|prediction)/v1|[\"']schema[\"']\s*:")


def test_vitals_round_trip() -> None:
    window = VitalsWindow("w-1", "pseudo-1", "mon-7", T, 1.5,
                          [[80.0, 97.0, None, 120.0, 80.0, 37.0], [None] * len(CHANNELS)])
    assert decode_vitals(encode_vitals(window)) == window


@pytest.mark.parametrize("envelope", [
    ScanEnvelope("1.2.3", "file:///store/1.2.3.dcm"),
    ScanEnvelope("1.2.3", "a/b.dcm", "pseudo-9", "application/dicom", 1234, "ab" * 32,
                 "1.2", "1.2.4", "1.2.3", "CT"),
])
def test_scan_envelope_round_trip(envelope: ScanEnvelope) -> None:
    assert decode_scan_envelope(encode_scan_envelope(envelope)) == envelope


def test_scan_envelope_bytes_are_deterministic() -> None:
    envelope = ScanEnvelope("e", "u", "p", size_bytes=3)
    assert encode_scan_envelope(envelope) == (
        b'{"event_id":"e","patient_id":"p","schema":"' + SCAN_SCHEMA.encode()
        + b'","size_bytes":3,"uri":"u"}')


def test_prediction_round_trip() -> None:
    for pred in (
        Prediction("e-1", "scan", "p", "scan_cnn", "1+sha256.ab", {"label": "normal", "score": 0.5},
                   T, T, 12.346, extra={"sop_uid": "1.2", "study_uid": "1.2.3"}),
        Prediction("e-2", "vitals", None, "vitals_lstm", "1", {"risk": 0.1}, T, T, 3.0),
    ):
        assert decode_prediction(encode_prediction(pred)) == pred


def test_every_schema_is_versioned_v1() -> None:
    assert {SCAN_SCHEMA, VITALS_SCHEMA, PREDICTION_SCHEMA} == {
        f"medstream.{name}/v1" for name in ("scan", "vitals", "prediction")}


def test_contracts_import_without_the_worker_runtime() -> None:
    code = "import sys, worker.contracts; assert not {'faust', 'pydicom'} & set(sys.modules), sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _hand_built(path: Path) -> list[str]:
    """Wire literals in code (not docstrings): schema ids, or a dict with a "schema" key."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip, found = _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in skip:
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if WIRE_LITERAL.search(text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]!r}")
        elif isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "schema" for k in node.keys):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: dict with a 'schema' key")
    return found


def _allowed(path: Path) -> bool:
    rel = path.relative_to(ROOT)
    return rel.parts[:2] == ("worker", "contracts") or (
        rel.parts[:2] == ("tests", "unit") and rel.name.startswith("test_contracts"))


def test_no_code_outside_the_contracts_builds_wire_messages() -> None:
    files = [p for p in ROOT.rglob("*.py")
             if not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(ROOT).parts)]
    assert any(p.name == "vitals.py" and p.parent.name == "contracts" for p in files)
    found = [hit for p in files if not _allowed(p) for hit in _hand_built(p)]
    assert not found, "build these with worker.contracts:\n" + "\n".join(found)
