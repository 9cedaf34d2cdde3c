"""The local onnxruntime shim (deploy/triton-backends/onnxruntime/model.py): session options
from config.pbtxt parameters, thread spinning off unless a model asks for it."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parents[2] / "deploy" / "triton-backends" / "onnxruntime" / "model.py"


@pytest.fixture
def shim(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The shim module, with an empty stand-in for the python backend's utilities module
    (which only exists inside Triton's stub process)."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils",
                        types.ModuleType("triton_python_backend_utils"))
    spec = importlib.util.spec_from_file_location("onnxruntime_shim", SHIM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(**parameters: str) -> dict:
    return {"parameters": {k: {"string_value": v} for k, v in parameters.items()}}


def test_spinning_is_off_unless_the_config_turns_it_on(shim: types.ModuleType) -> None:
    default = shim.session_options(_config())
    assert [default.get_session_config_entry(k) for k in shim.SPINNING] == ["0", "0"]
    on = shim.session_options(_config(**{"session.intra_op.allow_spinning": "1"}))
    assert on.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert on.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_thread_counts_come_from_the_config(shim: types.ModuleType) -> None:
    options = shim.session_options(_config(intra_op_thread_count="2", inter_op_thread_count="1"))
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert shim.session_options(_config()).intra_op_num_threads == 0


def test_a_spinning_value_other_than_0_or_1_is_refused(shim: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="session.inter_op.allow_spinning"):
        shim.session_options(_config(**{"session.inter_op.allow_spinning": "yes"}))
