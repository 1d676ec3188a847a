"""Writing result files so that an interruption or a full disk never leaves a half-written file behind.

A result file is written to a temporary file beside it, flushed to disk, then renamed over the target
(`os.replace` is atomic on POSIX within one filesystem): a reader sees the old content or the new one,
never a mixture; on any error the temporary file is removed and the old content is untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace `path` with `data` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if path.exists():
            # keep the target's permissions, not mkstemp's 0600
            os.chmod(temporary, path.stat().st_mode & 0o777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace `path` with `text` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_csv(path: str | os.PathLike, frame, **to_csv_options) -> Path:
    """Write a pandas DataFrame as CSV atomically (`to_csv_options` are passed to `DataFrame.to_csv`)."""
    return atomic_write_text(path, frame.to_csv(**{"index": False, **to_csv_options}))
