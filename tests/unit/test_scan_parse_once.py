"""A scan is parsed once: the dataset routing reads (pixel data deferred) is the one that is
checked and preprocessed, and it gives what a full parse gives on every pydicom test file."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.support.dicom_files import pydicom_files, quietly
from tests.support.routing import route_every_image
from worker.errors import PoisonMessage
from worker.preprocess.fast_dicom import scan_tensor
from worker.preprocess.formats import input_format
from worker.routing.matcher import Router
from worker.routing.rules import All, Rule, RuleSet, SkipAction
from worker.scan_input import ClaimCheckPolicy, check_dicom, read_dicom
from worker.scan_routing import HEADER_DEFER_BYTES, ScanRouting, prepare_scan, read_header

POLICY = ClaimCheckPolicy(None, 1 << 30)
RGB = input_format("rgb150_tf_nhwc").prepare


def _parse_once(data: bytes) -> pydicom.Dataset:
    """What `prepare_scan` does to a routed instance: the header, checked."""
    return check_dicom(read_header(data))


def _outcome(parse: Callable[[], pydicom.Dataset],
             prepare: Callable[[pydicom.Dataset], np.ndarray]) -> tuple[str, object]:
    """('tensor', array), ('poison', reason) or ('error', exception type) of one input."""
    try:
        return "tensor", prepare(parse())
    except PoisonMessage as exc:
        return "poison", exc.reason
    except Exception as exc:  # noqa: BLE001 - compared between the two parses, not raised
        return "error", type(exc).__name__


def _same(a: tuple[str, object], b: tuple[str, object]) -> bool:
    if a[0] == b[0] == "tensor":
        return bool(np.array_equal(a[1], b[1]))
    return a == b


def test_the_routed_dataset_gives_what_a_full_parse_gives_on_every_test_file() -> None:
    tensors = 0
    with quietly():
        for name, data in pydicom_files():
            for prepare in (scan_tensor, RGB):
                full = _outcome(functools.partial(read_dicom, data), prepare)
                once = _outcome(functools.partial(_parse_once, data), prepare)
                assert _same(full, once), (name, full[0], once[0])
                tensors += full[0] == "tensor"
    assert tensors > 200  # both formats, most of the corpus


def test_the_header_leaves_large_pixel_data_unread_until_checked() -> None:
    data = Path(get_testdata_file("US1_J2KR.dcm")).read_bytes()  # 150 KB of JPEG 2000
    header = read_header(data)
    assert header.get_item("PixelData", keep_deferred=True).value is None
    check_dicom(header)
    assert len(header.get_item("PixelData", keep_deferred=True).value) > HEADER_DEFER_BYTES


def test_a_routed_scan_is_prepared_from_the_dataset_it_was_routed_on() -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    routed = prepare_scan(data, POLICY, route_every_image())
    assert np.array_equal(routed.tensor, scan_tensor(read_dicom(data)))


def test_a_skipped_scan_never_reads_its_pixel_data(monkeypatch: pytest.MonkeyPatch) -> None:
    data = Path(get_testdata_file("US1_J2KR.dcm")).read_bytes()
    seen: list[pydicom.Dataset] = []

    def keep(payload: bytes) -> pydicom.Dataset:
        seen.append(read_header(payload))
        return seen[-1]

    monkeypatch.setattr("worker.scan_routing.read_header", keep)
    skip_all = ScanRouting(Router(RuleSet(Path("<test>"), (
        Rule("skip-all", 1, All(()), SkipAction("no model")),))), {})
    prepare_scan(data, POLICY, skip_all)
    assert seen and seen[0].get_item("PixelData", keep_deferred=True).value is None
