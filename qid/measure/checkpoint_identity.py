"""One checkpoint, however its folder is reached: a hard-linked or copied folder is the checkpoint it copies.

A local checkpoint's label is its resolved folder, so a symlink or another spelling already lands on one label. A
hard-linked copy (`cp -al`) or a plain copy has another path. Before measuring, a sweep compares each local folder
with the folders already in its table (and with the ones before it in the same sweep): the same model weight files
(names and sizes), each either the same file on disk (device and inode: a hard link, checked at no cost) or with the
same bytes (SHA-256, read only when names and sizes already agree), and the same metadata file. A match takes the
earlier label, so its finished cells are found and not measured again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from qid.measure.checkpoints import METADATA_FILENAMES, CheckpointSpec

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")  # the model's weights (not optimizer state)


def _weight_files(folder: Path) -> dict[str, os.stat_result]:
    files = {}
    for pattern in WEIGHT_PATTERNS:
        for path in folder.glob(pattern):
            if path.is_file():
                files[path.name] = path.stat()
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _metadata(folder: Path) -> bytes | None:
    for name in METADATA_FILENAMES:
        if (folder / name).is_file():
            return (folder / name).read_bytes()
    return None


def same_checkpoint(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two local folders hold the same weights (hard links or equal bytes) and the same metadata."""
    first, second = Path(first), Path(second)
    files_first, files_second = _weight_files(first), _weight_files(second)
    if not files_first or set(files_first) != set(files_second):
        return False
    if any(files_first[name].st_size != files_second[name].st_size for name in files_first):
        return False
    if _metadata(first) != _metadata(second):
        return False
    for name, stat in files_first.items():
        other = files_second[name]
        if (stat.st_dev, stat.st_ino) == (other.st_dev, other.st_ino):
            continue  # one file reached through two hard links
        if _sha256(first / name) != _sha256(second / name):
            return False
    return True


def known_labels(specs: list[CheckpointSpec], finished_labels) -> dict[CheckpointSpec, CheckpointSpec]:
    """{spec: spec named with an earlier label} for each unnamed local checkpoint that copies a folder already in
    the table (`finished_labels`: the table's checkpoint labels) or one listed before it in `specs`."""
    candidates = [label for label in dict.fromkeys(finished_labels) if os.path.isdir(label)]
    renamed = {}
    for spec in dict.fromkeys(specs):
        if spec.name or not spec.is_local:
            continue
        label = spec.label
        if label in candidates:
            continue
        match = next((other for other in candidates if same_checkpoint(label, other)), None)
        if match is not None:
            renamed[spec] = replace(spec, name=match)
        else:
            candidates.append(label)
    return renamed
