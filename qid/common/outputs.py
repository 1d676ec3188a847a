"""Checks on an output path before a command does any work: a mistyped output must fail at once and leave
every file as it was.

`check_location` refuses paths no command should write (system folders, folders, devices, a file where a
folder should be, an unwritable folder); `check_replaceable` also refuses to replace an existing file that
is not one of the command's own outputs (a model file, a CSV given as a fit JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Outputs under these folders are kernel interfaces, not files: writing there hangs or fails oddly.
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))
OWN_FILE_PEEK_BYTES = 16 * 2**20  # an own output (a fit JSON) is far smaller; larger files are not ours


class OutputPathError(ValueError):
    """An output path that cannot or must not be written; nothing was written to it."""


def check_location(path: str | os.PathLike, option: str = "output") -> Path:
    """`path` as a Path, if it is an ordinary file (or can become one); raises OutputPathError otherwise."""
    path = Path(path)
    resolved = Path(os.path.abspath(os.path.expanduser(path))).resolve()
    for folder in SYSTEM_FOLDERS:
        if resolved == folder or folder in resolved.parents:
            raise OutputPathError(f"{option} {path}: under {folder}, a system folder; write to an ordinary file")
    if resolved.exists():
        if resolved.is_dir():
            raise OutputPathError(f"{option} {path}: is a folder; give a file name inside it")
        if not resolved.is_file():
            raise OutputPathError(f"{option} {path}: not a regular file; give an ordinary file name")
        if not os.access(resolved, os.R_OK | os.W_OK):
            raise OutputPathError(f"{option} {path}: cannot be read and written (permissions)")
    else:
        ancestor = resolved.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputPathError(f"{option} {path}: {ancestor} is a file, not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise OutputPathError(f"{option} {path}: cannot create it, folder {ancestor} is not writable")
    return path


def is_fit_json(path: Path) -> bool:
    """A JSON object with 'law' and 'params': what `qid fit --out` writes."""
    if path.stat().st_size > OWN_FILE_PEEK_BYTES:
        return False
    try:
        content = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(content, dict) and "law" in content and "params" in content


def check_replaceable(path: str | os.PathLike, is_own, what: str, option: str = "output") -> Path:
    """`check_location`, and an existing non-empty file must pass `is_own(path)` (one of our `what` files)."""
    path = check_location(path, option)
    if path.is_file() and path.stat().st_size > 0 and not is_own(path):
        raise OutputPathError(f"{option} {path}: exists and is not a {what}; refusing to replace it: give a new file name")
    return path
