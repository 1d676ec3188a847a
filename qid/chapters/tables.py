"""Tables as a reader sees them in the book: compact fit tables (value, interval, published value) instead of raw
lmfit reports, and long tables as a short summary plus the full table collapsed, with a CSV download.

These only format; the numbers come from the fits and tables passed in.
"""

from __future__ import annotations

import base64
import html
import math

import pandas as pd

from qid.fitting.problem import DEFAULT_CONFIDENCE


def fit_table(fit, published: dict | None = None, published_label: str = "published",
              names: list[str] | None = None) -> pd.DataFrame:
    """One row per parameter: value, standard error, interval low/high and which interval, and a reference value.

    The interval is the fit's bootstrap percentile interval where it has one, otherwise value ± t·stderr with
    t for the fit's residual degrees of freedom (a linearised interval; said so in the `interval` column).
    """
    from scipy.stats import t

    confidence = fit.confidence or DEFAULT_CONFIDENCE
    dof = max(int(fit.n_points) - int(fit.n_free), 1)
    quantile = float(t.ppf(0.5 + confidence / 2, dof))
    intervals = fit.intervals or {}
    bootstrap_stderr = (fit.bootstrap or {}).get("stderr") or {}
    rows = []
    for name in names or list(fit.params):
        value = float(fit.params[name])
        stderr = fit.stderr.get(name) if fit.stderr else None
        if intervals.get(name):
            low, high = intervals[name]
            kind = f"bootstrap {confidence:.0%}"
            stderr = bootstrap_stderr.get(name, stderr)
        elif stderr is not None and math.isfinite(stderr):
            low, high = value - quantile * stderr, value + quantile * stderr
            kind = f"± t·se, {confidence:.0%}"
        else:
            low = high = math.nan
            kind = "none"
        row = {"parameter": name, "value": value, "stderr": math.nan if stderr is None else float(stderr),
               "low": float(low), "high": float(high), "interval": kind}
        if published is not None:
            row[published_label] = float(published[name]) if name in published else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("parameter")


def styled(frame: pd.DataFrame, number_format: str = "{:.4g}", hide_index: bool = False):
    """A Styler with one number format for every float column and NaN shown as an en dash."""
    formats = {column: number_format for column in frame.columns if frame[column].dtype.kind == "f"}
    styler = frame.style.format(formats, na_rep="–")
    return styler.hide(axis="index") if hide_index else styler


def csv_download_link(frame: pd.DataFrame, filename: str, text: str | None = None) -> str:
    """An HTML link that downloads the table as CSV (embedded in the page: works offline and in any build)."""
    payload = base64.b64encode(frame.to_csv(index=False).encode()).decode()
    label = html.escape(text or f"Download {filename}")
    return f'<a download="{html.escape(filename)}" href="data:text/csv;base64,{payload}">{label}</a>'


def collapsed_table_html(frame: pd.DataFrame, filename: str, summary: str | None = None) -> str:
    """The full table inside a closed <details> element (every cell through the book's formatter), with its CSV
    download link (the CSV keeps every digit)."""
    from qid.chapters.formatting import page_table

    title = summary or f"Full table ({len(frame)} rows × {len(frame.columns)} columns)"
    table = page_table(frame).to_html()
    return (f"<details><summary>{html.escape(title)}</summary>\n"
            f'<div style="overflow-x:auto">{table}</div>\n</details>\n'
            f"<p>{csv_download_link(frame, filename)}</p>")


def show_long_table(summary, full: pd.DataFrame, filename: str, title: str | None = None) -> None:
    """Display a short summary (a DataFrame or Styler) and, below it, the full table collapsed with a CSV link."""
    from IPython.display import HTML, display

    display(summary)
    display(HTML(collapsed_table_html(full, filename, title)))
