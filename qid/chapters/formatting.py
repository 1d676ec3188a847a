"""How every number and table reads on a page of the book: one number formatter and one table formatter.

A reader should see as many digits as the measurement supports and no more, intervals as `[a, b]`, model sizes
as "150k" or "7B", token counts as "1.2 × 10¹⁴", and tables without pandas' index, `True`/`nan` cells or
`-0.00000`. The chapters call these functions instead of writing format strings of their own:

    format_number(0.0123456, se=0.00042)     -> "0.01235"      (the SE's second significant digit)
    format_number(0.14804153232793235)       -> "0.148"        (3 significant digits without an SE)
    format_interval(0.0312, 0.2871)          -> "[0.031, 0.287]"
    format_size(150_080) -> "150k";  format_size(7e9) -> "7B";  format_count(150_080) -> "150,080"
    page_table(frame, se_columns={"qid": "qid_se"})   -> a Styler: no index, every cell formatted

These only format: the numbers come from the chapters' computations.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

SIGNIFICANT_DIGITS = 3  # digits of a number shown without a standard error
SE_DIGITS = 2  # significant digits of a standard error; the value is rounded at the same decimal place
SCIENTIFIC_ABOVE = 1e6  # |x| from here up (and below SCIENTIFIC_BELOW) is written as m × 10ⁿ
SCIENTIFIC_BELOW = 1e-4
MISSING = "–"  # an en dash for NaN, None and empty cells
MAX_SIGNIFICANT_DIGITS = 6  # never more, however small the SE claims to be
MAX_DECIMALS = 6  # a value rounded by its SE to more decimal places than this is written as m × 10ⁿ
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
SIZE_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))  # parameters and tokens, as the field writes them
T95 = 1.959963984540054  # normal 97.5 % quantile: an interval's half width over it stands in for a missing SE


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _exponent(value: float) -> int:
    return math.floor(math.log10(abs(value))) if value != 0 else 0


def _fixed(value: float, decimals: int, trim: bool = False) -> str:
    """Fixed point at `decimals` places (negative: rounded to tens, hundreds, ...); `trim` drops trailing zeros."""
    if decimals < 0:
        value, decimals = round(value, decimals), 0
    text = f"{value:,.{decimals}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    if float(text.replace(",", "")) == 0:  # no "-0.00000": a value that rounds to zero has no sign
        text = text.lstrip("-")
    return text


def _scientific(value: float, mantissa_digits: int, trim: bool = False) -> str:
    """m × 10ⁿ with `mantissa_digits` significant digits (`trim`: trailing zeros dropped, "1 × 10¹⁴")."""
    exponent = _exponent(value)
    mantissa = value / 10 ** exponent
    if round(abs(mantissa), max(mantissa_digits - 1, 0)) >= 10:  # 9.996 -> 10.0: carry into the exponent
        exponent, mantissa = exponent + 1, mantissa / 10
    text = f"{mantissa:.{max(mantissa_digits - 1, 0)}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} × 10{str(exponent).translate(SUPERSCRIPTS)}"


def decimals_for_se(se: float, digits: int = SE_DIGITS) -> int:
    """Decimal places that keep `digits` significant digits of a standard error (may be negative: tens, hundreds)."""
    return digits - 1 - _exponent(se)


def format_number(value, se=None, digits: int = SIGNIFICANT_DIGITS) -> str:
    """One number as a reader should see it.

    With a standard error `se` (> 0), the value is rounded at the decimal place of the SE's `SE_DIGITS`-th
    significant digit; without one, to `digits` significant digits. Integers are written in full with thousands
    separators; very large and very small magnitudes as m × 10ⁿ. NaN and None become an en dash."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    value = float(value)
    if value == 0:
        return "0"
    has_se = se is not None and not _missing(se) and float(se) > 0
    if not has_se and value == round(value) and abs(value) < SCIENTIFIC_ABOVE:
        return _fixed(value, 0)
    magnitude = abs(value)
    if has_se:
        decimals = decimals_for_se(float(se))
        if magnitude < SCIENTIFIC_ABOVE and decimals <= MAX_DECIMALS:
            return _fixed(value, decimals)
        mantissa_digits = min(max(_exponent(value) + decimals + 1, 1), MAX_SIGNIFICANT_DIGITS)
        return _scientific(value, mantissa_digits)
    if SCIENTIFIC_BELOW <= magnitude < SCIENTIFIC_ABOVE:
        return _fixed(value, digits - 1 - _exponent(value), trim=True)
    return _scientific(value, digits, trim=True)


def format_se(se) -> str:
    """A standard error to `SE_DIGITS` significant digits."""
    if _missing(se):
        return MISSING
    return format_number(float(se), digits=SE_DIGITS) if float(se) > 0 else "0"


def format_value_se(value, se) -> str:
    """"value ± se", both rounded at the SE's precision."""
    if _missing(se) or float(se) <= 0:
        return format_number(value)
    return f"{format_number(value, se=se)} ± {format_se(se)}"


def format_interval(low, high, se=None) -> str:
    """An interval as `[a, b]`, both ends at one precision: that of `se`, else of the interval's own width."""
    if _missing(low) or _missing(high):
        return MISSING
    low, high = float(low), float(high)
    if se is None or _missing(se) or float(se) <= 0:
        se = (high - low) / (2 * T95) if high > low else None
    if se is None:
        return f"[{format_number(low)}, {format_number(high)}]"
    return f"[{format_number(low, se=se)}, {format_number(high, se=se)}]"


def format_value_interval(value, low, high, se=None) -> str:
    """"value [a, b]" at the interval's precision."""
    if _missing(low) or _missing(high):
        return format_number(value, se=se)
    if se is None or _missing(se) or float(se) <= 0:
        se = (float(high) - float(low)) / (2 * T95) if float(high) > float(low) else None
    return f"{format_number(value, se=se)} {format_interval(low, high, se=se)}"


def format_size(value) -> str:
    """A model size or token count as the field writes it: 150,080 -> "150k", 7e9 -> "7B", 4.05e11 -> "405B"."""
    if _missing(value):
        return MISSING
    value = float(value)
    for scale, suffix in SIZE_SUFFIXES:
        if abs(value) >= scale:
            scaled = value / scale
            if abs(scaled) >= 1000 and suffix == "T":
                return format_number(value)
            text = f"{scaled:.{max(SIGNIFICANT_DIGITS - 1 - _exponent(scaled), 0)}f}"
            text = text.rstrip("0").rstrip(".") if "." in text else text
            return f"{text}{suffix}"
    return format_number(value)


def format_count(value) -> str:
    """A count in full with thousands separators: 150080 -> "150,080"."""
    if _missing(value):
        return MISSING
    return f"{round(float(value)):,}"


def format_percent(fraction, digits: int = SIGNIFICANT_DIGITS - 1) -> str:
    """A fraction as a percentage with at most `digits` significant digits before trimming: 0.953 -> "95%"."""
    if _missing(fraction):
        return MISSING
    percent = 100 * float(fraction)
    decimals = max(digits - 1 - _exponent(percent), 0) if percent != 0 else 0
    return f"{_fixed(percent, decimals)}%"


def format_cell(value) -> str:
    """A table cell of unknown kind: numbers by `format_number`, booleans as yes/no, lists as intervals."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return format_interval(*value)
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if _missing(value):
        return MISSING
    try:
        return format_number(float(value))
    except (TypeError, ValueError):
        return str(value)


Formatter = Callable[[object], str]


def page_table(frame, se_columns: Mapping[str, str] | None = None, formats: Mapping[str, Formatter] | None = None,
               drop_se_columns: bool = False, rename: Mapping[str, str] | None = None):
    """A DataFrame as a page shows it: a Styler without the index, every cell formatted.

    A named index (or MultiIndex) becomes ordinary leading columns; an unnamed one is dropped. `se_columns` maps a value column to the
    column of its standard error: the value is rounded at that SE's precision row by row (and with
    `drop_se_columns` shown as "value ± se" in one column). `formats` maps a column to its own formatter (e.g.
    `format_size` for N, `format_percent` for a rate); every other cell goes through `format_cell`. `rename`
    relabels columns after formatting."""
    import pandas as pd

    table = frame.copy()
    # a named index (or MultiIndex) carries data: it becomes columns; an unnamed one is only row numbers
    table = table.reset_index(drop=all(name is None for name in table.index.names))
    table.columns = [" ".join(str(part) for part in column if str(part)) if isinstance(column, tuple) else str(column)
                     for column in table.columns]
    se_columns = dict(se_columns or {})
    formats = dict(formats or {})
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        if drop_se_columns and column in se_columns.values():
            continue
        values = table[column]
        if column in formats:
            shown[column] = [formats[column](value) for value in values]
        elif column in se_columns:
            errors = table[se_columns[column]]
            combine = format_value_se if drop_se_columns else (lambda value, se: format_number(value, se=se))
            shown[column] = [combine(value, se) for value, se in zip(values, errors)]
        elif column in se_columns.values():
            shown[column] = [format_se(value) for value in values]
        else:
            shown[column] = [format_cell(value) for value in values]
    if rename:
        shown = shown.rename(columns=dict(rename))
    return shown.style.hide(axis="index")  # alignment comes from the book's CSS (_static/qid-book.css)
