"""Measured tables as fit inputs: the columns of `qid measure` and of the suite named as the laws name them.

`qid measure` and the suite write `bits` and `tokens` (the suite) or `D` (measure); the laws read `P` and `D`.
`law_table` renames, filters (one quantizer, a pandas query) and says what it kept, so `qid fit` and
chapter 05 read any of these tables directly.
"""

from __future__ import annotations

import pandas as pd

from qid.laws.registry import Law
from qid.common.csvtables import DataError

# Measured column -> the law's variable (applied only where the law's name is absent from the table).
LAW_COLUMN_NAMES = {"bits": "P", "tokens": "D"}
DEFAULT_ERROR_COLUMN = "qid_se"  # standard error of QiD over eval windows (qid measure, the suite)


def law_table(table: pd.DataFrame, law: Law, method: str | None = None, where: str | None = None) -> pd.DataFrame:
    """The rows and columns a fit of `law` reads: measured names mapped to the law's (bits→P, tokens→D),
    only quantizer `method` (when given; the table needs a `method` column), only rows where the pandas
    query `where` holds. Keeps every other column; the result's attrs name its source and the filters."""
    source = table.attrs.get("source", "table")
    selected = table
    if method is not None:
        if "method" not in selected.columns:
            raise DataError(f"{source}: --method {method} given, but the table has no 'method' column")
        methods = sorted(selected["method"].dropna().astype(str).unique())
        if method not in methods:
            raise DataError(f"{source}: no rows with method {method!r} (methods present: {', '.join(methods) or 'none'})")
        selected = selected[selected["method"].astype(str) == method]
    if where:  # on the table's own column names (bits, tokens), before they are renamed
        try:
            selected = selected.query(where)
        except Exception as error:  # pandas raises many types for a bad expression; report one line
            raise DataError(f"{source}: --where {where!r} is not a valid filter on this table: {error}") from None
    renamed = selected.rename(columns={old: new for old, new in LAW_COLUMN_NAMES.items()
                                       if old in selected.columns and new not in selected.columns})
    if renamed.empty:
        raise DataError(f"{source}: no rows left after the filters (method={method!r}, where={where!r})")
    missing = [name for name in (*law.variables, law.response) if name not in renamed.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} for law {law.name} "
                        f"(measured tables may name them {', '.join(f'{a}→{b}' for a, b in LAW_COLUMN_NAMES.items())})")
    result = renamed.reset_index(drop=True)
    result.attrs.update(table.attrs)
    result.attrs["filters"] = {"method": method, "where": where}
    return result


def default_errors(table: pd.DataFrame, law: Law) -> str | None:
    """The error column used when none is named: `qid_se` for a QiD law on a table that has it, else none."""
    return DEFAULT_ERROR_COLUMN if law.response == "qid" and DEFAULT_ERROR_COLUMN in table.columns else None
