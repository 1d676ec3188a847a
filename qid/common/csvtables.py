"""Loading tidy CSV tables with checks that say exactly what is wrong (file, column, row).

Every table the book reads goes through `load_table`, so a reader who passes their own CSV gets the same
clear message whether it came from a chapter, the CLI or a test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


# A tidy table of measurements is kilobytes; anything this large was named by mistake (reading it would
# take minutes and its error message would quote megabytes).
MAX_TABLE_BYTES = 64 * 2**20


class DataError(ValueError):
    """A data file that cannot be used as asked; the message names the file and the column."""


def _excerpt(text, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def load_table(
    path: str | Path,
    required: list[str] | tuple[str, ...] = (),
    positive: list[str] | tuple[str, ...] = (),
    finite: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """Read a CSV and check it.

    required: columns that must exist; positive: numeric columns whose every value must be > 0 (they are
    logged by the laws); finite: numeric columns with no NaN/inf. `positive` implies numeric and finite.
    """
    import pandas as pd  # imported where used: modules that only raise DataError stay quick to import (the CLI)

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a CSV file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise DataError(f"{path}: {size / 2**20:.0f} MiB, larger than a table can be ({MAX_TABLE_BYTES // 2**20} MiB); "
                        "is it the right file?")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({_excerpt(error)})") from error
    check_table(table, str(path), required, positive, finite)
    return table


def check_table(table: pd.DataFrame, source: str, required=(), positive=(), finite=()) -> None:
    """The checks of `load_table` for a table already in memory; `source` names it in messages."""
    import pandas as pd

    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; found {_excerpt(', '.join(map(str, table.columns))) or 'none'}"
        )
    for column in dict.fromkeys([*finite, *positive]):
        if column not in table.columns:
            raise DataError(f"{source}: missing column {column}")
        values = pd.to_numeric(table[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: column {column} has {int(bad.sum())} missing or non-numeric value(s), "
                f"first at data row {row + 1} ({_excerpt(repr(table[column].iloc[row]), 80)})"
            )
        if column in positive and (values <= 0).any():
            row = int(np.flatnonzero((values <= 0).to_numpy())[0])
            raise DataError(
                f"{source}: column {column} must be > 0 (it is taken in logs); "
                f"data row {row + 1} has {values.iloc[row]!r}"
            )
