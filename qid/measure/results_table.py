"""The QiD results table of a sweep: its columns, the cell key, and safe appends.

A sweep appends one CSV row per finished cell. Nothing is written before the output path is checked
(`check_output_path`): it must be absent, empty, or a results table with exactly this version's header —
never a directory, a model file, another CSV or a path under /proc, /sys or /dev — so a mistyped
``--output`` cannot damage a file. Appends hold a file lock (`FILE.lock`, an empty file beside the table),
re-read the finished keys, write one complete line, fsync, and check the file grew by exactly that line;
a failed write (a full disk, Ctrl-C) is cut back to the previous end, so the table never keeps half a row.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from filelock import FileLock

from qid.common.outputs import check_location

# Every column of the results table, in order (units in data/README.md).
COLUMNS = (
    "family", "checkpoint", "step", "N", "D", "method", "bits", "group_size",
    "loss_16", "loss_q", "qid", "qid_se", "kl", "kl_se", "top1_agree", "eval_tokens", "eval_windows", "eval_window", "eval_source",
    "calib_samples", "calibration_length", "calibration_source", "symmetric", "act_order", "damp", "seed",
    "calib_seed", "batch_size", "threads",
    "device", "dtype", "seconds", "quantize_seconds", "versions", "git_commit", "finished_at",
)
# The columns that identify a cell: a row with the same values is "already done". Every setting of a sweep
# that can change a result is here: `batch_size` changes GPTQ/AWQ results (QiD moved by up to 29% in issue
# 11) and `threads` changes the order of CPU sums. Device and dtype are recorded but not keyed (`auto`
# resolves differently per machine): one table per device (data/README.md).
KEY_COLUMNS = (
    "checkpoint", "method", "bits", "group_size", "eval_source", "eval_window", "eval_tokens",
    "calibration_source", "calibration_length", "calib_samples", "symmetric", "act_order", "damp", "seed",
    "calib_seed", "batch_size", "threads",
)
# What a reader of the table needs; tables written by earlier versions (fewer columns) still have these.
READ_COLUMNS = ("family", "checkpoint", "step", "N", "D", "method", "bits", "group_size", "loss_16", "loss_q",
                "qid", "qid_se")
_FIRST_LINE_LIMIT = 65_536  # bytes read to find the header line


class OutputTableError(ValueError):
    """An output path that is not (and cannot become) a QiD results table; nothing was written to it."""


def _header_line() -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(COLUMNS)
    return buffer.getvalue()


HEADER_LINE = _header_line()


def format_value(value) -> str:
    """How a value is written to the CSV (and compared when resuming)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 1e18:
            return str(int(value)) if value != 0 or math.copysign(1, value) > 0 else "0"
        return repr(value)
    return str(value)


def _excerpt(data: bytes, limit: int = 80) -> str:
    text = data[:limit].decode("utf-8", errors="replace")
    return repr(text) + ("…" if len(data) > limit else "")


def _check_header(path: Path) -> None:
    """The file is empty, a table with this version's header, or our own header cut short by a kill."""
    with open(path, "rb") as handle:
        head = handle.read(_FIRST_LINE_LIMIT)
    if not head:
        return
    line, newline, _ = head.partition(b"\n")
    expected = HEADER_LINE.encode()
    if not newline:
        if expected.startswith(head):
            return  # a writer killed while writing the header: the repair empties it
        raise OutputTableError(f"{path}: not a QiD results table (no header line; starts {_excerpt(head)}); "
                               "nothing was written: give a new file name")
    if line + b"\n" == expected:
        return
    try:
        found = next(csv.reader([line.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error):
        found = []
    if {"checkpoint", "method", "bits", "qid"} <= set(found) and set(found) < set(COLUMNS):
        missing = [column for column in COLUMNS if column not in found]
        raise OutputTableError(
            f"{path}: a QiD results table from an earlier version (it lacks {', '.join(missing)}), so its cells "
            "cannot be matched for resuming; nothing was written: give a new file name "
            "(the old table stays readable with qid.measure.sweep.load_results)")
    raise OutputTableError(f"{path}: not a QiD results table (first line {_excerpt(line)}); "
                           "nothing was written: give a new file name")


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output that is not absent, empty, or a QiD results table, before anything is written."""
    path = check_location(path, "output")
    resolved = Path(os.path.abspath(os.path.expanduser(path))).resolve()
    if resolved.exists():
        _check_header(resolved)
    lock = Path(str(resolved) + ".lock")
    if lock.exists() and (not lock.is_file() or lock.stat().st_size > 0):
        raise OutputTableError(f"{lock}: exists and is not an (empty) lock file of this table; move it away")
    return path


def table_lock(path: str | os.PathLike) -> FileLock:
    """The table's lock, beside the file the path resolves to: a symlink (or another spelling) of one table takes
    the same lock, so two writers naming it two ways cannot cut each other's rows."""
    return FileLock(str(Path(os.path.abspath(os.path.expanduser(path))).resolve()) + ".lock")


def _read_rows_unlocked(path: Path) -> list[dict]:
    if not path.is_file() or path.stat().st_size == 0:
        return []
    _check_header(path)
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _repair_partial_line_unlocked(path: Path) -> None:
    """Drop an incomplete last line (a writer killed mid-write); complete rows always end with a newline.

    Only called on a file `_check_header` accepted: it never touches a file that is not ours.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        # scan back from the end for the last newline (the table may be large; read it in blocks)
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - 65_536)
            handle.seek(start)
            block = handle.read(position - start)
            index = block.rfind(b"\n")
            if index >= 0:
                handle.truncate(start + index + 1)
                return
            position = start
        handle.truncate(0)


def row_key(row: dict) -> tuple[str, ...]:
    """The cell key of a row (a mapping of column → value, raw or formatted)."""
    return tuple(format_value(row[column]) for column in KEY_COLUMNS)


def finished_keys(path: str | os.PathLike) -> set[tuple[str, ...]]:
    """Keys of the cells already in the table (empty when the file does not exist); checks the file first."""
    path = check_output_path(path)
    if not path.exists():
        return set()
    with table_lock(path):
        _check_header(path)
        _repair_partial_line_unlocked(path)
        return {tuple(row[column] for column in KEY_COLUMNS) for row in _read_rows_unlocked(path)}


def _write_all(descriptor: int, data: bytes) -> None:
    """os.write until every byte is written (unbuffered: nothing is left to flush after a failure)."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def append_row(path: str | os.PathLike, row: dict) -> bool:
    """Append one row under the file lock unless its cell is already there; True when written.

    The write is verified: the file must end exactly one line longer. On any failure (a full disk,
    an interrupt) the file is cut back to its previous length and the error is raised.
    """
    path = check_output_path(path)
    missing = [column for column in COLUMNS if column not in row]
    if missing:
        raise ValueError(f"row lacks column(s) {', '.join(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with table_lock(path):
        if path.exists():
            _check_header(path)
        _repair_partial_line_unlocked(path)
        existing = _read_rows_unlocked(path)
        key = row_key(row)
        if any(tuple(old[column] for column in KEY_COLUMNS) == key for old in existing):
            return False
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not path.is_file() or path.stat().st_size == 0:
            buffer.write(HEADER_LINE)
        writer.writerow([format_value(row[column]) for column in COLUMNS])
        data = buffer.getvalue().encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            before = os.fstat(descriptor).st_size
            try:
                _write_all(descriptor, data)
                after = os.fstat(descriptor).st_size
                if after != before + len(data):
                    raise OSError(f"{path}: append not verified (file is {after} bytes, expected {before + len(data)})")
            except BaseException:
                os.ftruncate(descriptor, before)  # no half row stays behind
                raise
            # The row is whole: a Ctrl-C from here on must not cut it back (it did, when it came during fsync);
            # a failed fsync (the disk refused it) still does.
            try:
                os.fsync(descriptor)
            except OSError:
                os.ftruncate(descriptor, before)
                raise
        finally:
            os.close(descriptor)
    return True


def load_results(path: str | os.PathLike):
    """The sweep table as a DataFrame, checked (columns present, losses finite). Tables written by earlier
    versions, with fewer columns, are read too."""
    from qid.common.csvtables import load_table

    return load_table(path, required=READ_COLUMNS, finite=("loss_16", "loss_q", "qid", "bits", "N"))
