"""Where `produce scans` reads DICOM files from: files, folders (recursively), zip archives.

Yields (name, bytes) pairs lazily; unreadable inputs are yielded as (name, OSError) so the
caller can report and count them without stopping.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

MAX_MEMBER_BYTES = 2 * 1024**3  # refuse zip members (or bombs) larger than 2 GiB

Item = tuple[str, bytes | OSError]


def _is_dicom_file(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _zip_members(path: Path) -> Iterator[Item]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        yield str(path), OSError(f"unreadable zip archive: {exc}")
        return
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            name = f"{path}!{info.filename}"
            if info.is_dir():
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                yield name, OSError(f"zip member larger than {MAX_MEMBER_BYTES} bytes")
                continue
            try:
                yield name, archive.read(info)
            except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
                yield name, OSError(f"unreadable zip member: {exc}")


def _file(path: Path) -> Iterator[Item]:
    try:
        if not _is_dicom_file(path) and zipfile.is_zipfile(path):
            yield from _zip_members(path)
            return
        yield str(path), path.read_bytes()
    except OSError as exc:
        yield str(path), exc


def iter_inputs(paths: Iterable[Path]) -> Iterator[Item]:
    """Every file under `paths` in a stable order; zip archives are expanded."""
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _file(child)
        elif path.exists():
            yield from _file(path)
        else:
            yield str(path), FileNotFoundError(f"no such file or folder: {path}")
