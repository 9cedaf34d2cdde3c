"""pydicom's own test files, for checks that must hold on every one of them."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom.data import get_testdata_files

from worker.scan_input import quiet_pydicom


@functools.cache
def pydicom_files() -> tuple[tuple[str, bytes], ...]:
    """(file name, bytes) of every pydicom test file."""
    paths = [Path(p) for p in get_testdata_files()]
    return tuple((path.name, path.read_bytes()) for path in paths if path.is_file())


@contextmanager
def quietly() -> Iterator[None]:
    """pydicom's warnings and log lines silenced (the corpus holds many malformed files)."""
    quiet_pydicom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
