"""The book's findings, first: short statements built from the numbers the chapters glue, and one overview
figure of the exponents α, β, γ. Nothing here is typed: every number comes from an executed chapter's glued
values (`myst_nb.glue`), from a committed fit JSON, or from the law registry.

`write_findings` runs in `python -m qid.chapters.runner --prepare-site` (so in `make site`) and writes
`chapters/findings.md` (included by `book/intro.md`) and `chapters/findings_exponents.png`. A statement whose
numbers are not glued yet (its chapter not executed in this build, or not gluing that name yet) is replaced by
a visible placeholder naming the chapter to run. `python -m qid.chapters.findings` prints the same summary.

Glued names read (chapter: names):
  01_published_laws: per_bit_cells_within, per_bit_max_error, unified_max_error_3bit, unified_max_error_4bit
  02_measure_qid: measure_lowest_bits, measure_rtn_qid, measure_gptq_qid, measure_gptq_rtn_ratio,
                  measure_paired_se_gain
  03_mini_pythia_suite: suite_checkpoints, suite_qid_cells, suite_decades
  04_fitter_validation: chinchilla_available, chinchilla_{E,alpha,beta}_relative_error, coverage_wald,
                        coverage_bootstrap
  05_fits_on_our_data: unified_{beta,gamma} with _low/_high, fit_n_points; optional: beta_local_slope_{first,last}
    (with _dn, _sizes), beta_estimator_{min,max}, alpha_slope with _low/_high, alpha_determined, best_law_cv(_close),
    holdout_rms_z, holdout_naive_beats_every_law
  06_learning_rate_schedules: luo_published_metrics_match; optional: schedule_{matched_tokens,matched_loss,token_gap}
    with _interval, schedule_families, schedule_verdict
  07_training_precision: qat_runs_measured, qat_gamma_w_profile_region, qat_gamma_w_profile_low_open,
    qat_gamma_w_profile_covers_kumar
  08_float_formats: formats_preset, formats_checkpoints, formats_min_rung, formats_equal_storage_bits,
    formats_pooled_{best,runs,runner_up},
    formats_pooled_excess with _interval, formats_pooled_separated; optional: formats_holdout_rms_z_range
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Callable

from qid.chapters.glued import Missing, placeholder_text, value_getter
from qid.common.paths import REPO_ROOT

FINDINGS_FILE = "findings.md"
EXPONENTS_FIGURE = "findings_exponents.png"
EXPONENTS = ("alpha", "beta", "gamma")
EXPONENT_SYMBOLS = {"alpha": "α (model size N)", "beta": "β (training tokens D)", "gamma": "γ (bit width P)"}
TABLE1_FITS = "table1_per_bit_P*.json"  # per-bit laws fitted to the paper's Table 1 (chapter 01)
OWN_UNIFIED_FITS = "*suite_unified_*.json"  # the unified law on the book's suite, one file per quantizer (chapter 05)
OWN_PER_BIT_FITS = "*suite_per_bit_P*_*.json"


# --- glued values ------------------------------------------------------------------------------------------


def glued_values(notebook, strict: bool = False) -> dict:
    """Values recorded with myst_nb.glue in an executed notebook, by name.

    A value that is not a Python literal (e.g. a numpy repr) is kept as its text, or with `strict` raises
    (the book's tests: a chapter must glue plain numbers, lists and strings)."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                text = output.get("data", {}).get(scrap.get("mime_prefix", "") + "text/plain")
                try:
                    values[scrap["name"]] = ast.literal_eval(text) if text is not None else None
                except (ValueError, SyntaxError):
                    if strict:
                        raise
                    values[scrap["name"]] = text
    return values


def chapter_values(chapters_dir: Path) -> dict[str, dict]:
    """Glued values of every executed chapter in `chapters_dir` (placeholders count as not executed)."""
    import nbformat

    values = {}
    for path in sorted(Path(chapters_dir).glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if not notebook.metadata.get("qid_placeholder"):
            values[path.stem] = glued_values(notebook)
    return values


def _interval(get, chapter: str, key: str) -> str:
    return f"{get(chapter, key):.3g} [{get(chapter, key + '_low'):.3g}, {get(chapter, key + '_high'):.3g}]"


def _listed_interval(get, chapter: str, key: str, label: str = "95 % interval", digits: str = ".3g") -> str:
    """A value glued as `key` with its interval glued as the list `key_interval`: "value nats/token (label [low, high])"."""
    low, high = get(chapter, key + "_interval")
    return f"{get(chapter, key):{digits}} nats/token ({label} [{low:{digits}}, {high:{digits}}])"


# --- the statements ------------------------------------------------------------------------------------------
# Each is (title, chapter page, function of `get` returning Markdown). Published values come from the registry.


def _table1(get) -> str:
    worst = max(get("01_published_laws", "unified_max_error_3bit"), get("01_published_laws", "unified_max_error_4bit"))
    return (f"The paper's Table 1 is not computed from its printed unified law: that law misses the 3- and 4-bit "
            f"cells by up to {worst:.0%}, while one law per bit width, fitted to the table, reproduces "
            f"**{get('01_published_laws', 'per_bit_cells_within')} of 48 cells** within "
            f"{get('01_published_laws', 'per_bit_max_error'):.1%}.")


def _exponents(get) -> str:
    from qid.laws.registry import get_law

    published = get_law("ouyang_unified").parameter_sets["published"].values
    chapter = "05_fits_on_our_data"
    beta_low = get(chapter, "unified_beta_low")
    trend = ("QiD grows with training tokens in our data too (β's whole interval is above zero)" if beta_low > 0
             else "our data cannot tell whether QiD grows with training tokens (β's interval reaches zero)")
    text = (f"Fitted to {get(chapter, 'fit_n_points')} QiD measurements of the book's own suite, the unified law "
            f"gives β = {_interval(get, chapter, 'unified_beta')}, γ = {_interval(get, chapter, 'unified_gamma')} "
            f"(95 % bootstrap intervals) against the published β = {published['beta']}, γ = {published['gamma']}; "
            f"{trend}.")

    def local() -> str:
        def sizes(end: str) -> str:
            return _optional(lambda: f", {get(chapter, f'beta_local_slope_{end}_sizes')} size(s)")

        return (f" But no single exponent describes D: the local slope d ln QiD / d ln D falls from "
                f"{get(chapter, 'beta_local_slope_first'):.2f} (D/N ≈ {get(chapter, 'beta_local_slope_first_dn'):.0f}"
                f"{sizes('first')}) to {get(chapter, 'beta_local_slope_last'):.2f} (D/N ≈ "
                f"{get(chapter, 'beta_local_slope_last_dn'):.0f}{sizes('last')}), "
                f"and reasonable estimators on the same rows give β from {get(chapter, 'beta_estimator_min'):.2f} "
                f"to {get(chapter, 'beta_estimator_max'):.2f}.")

    def alpha() -> str:
        determined = get(chapter, "alpha_determined")
        return (f" α = {_interval(get, chapter, 'alpha_slope')} from the suite's sizes (t interval; published "
                f"{published['alpha']})" + ("." if determined else ": **α is not determined** by these data."))

    def ranking() -> str:
        close = get(chapter, "best_law_cv_close")
        return (f" Ranked by leave-one-lineage-out cross-validation, `{get(chapter, 'best_law_cv')}` comes first"
                + (", but not decisively." if close else "."))

    def holdout() -> str:
        scores = get(chapter, "holdout_rms_z")
        naive = [law for law in scores if law.startswith("naive")]
        laws = {law: value for law, value in scores.items() if law not in naive}
        text = (f" On the common hold-out every law misses, by {min(laws.values()):.1f}–{max(laws.values()):.1f} "
                "standard errors RMS")
        if naive and get(chapter, "holdout_naive_beats_every_law"):
            text += f", and none beats the naive nearest-row baseline ({scores[naive[0]]:.1f})"
        return text + "."

    return text + _optional(local) + _optional(alpha) + _optional(ranking) + _optional(holdout)


def _optional(build) -> str:
    """A clause whose number may not be glued in this build: empty then, instead of a placeholder."""
    try:
        return build()
    except Missing:
        return ""


def _schedules(get) -> str:
    chapter = "06_learning_rate_schedules"
    match = get(chapter, "luo_published_metrics_match")
    text = ("Luo et al.'s Multi-Power Law, as the book computes it, reproduces their published test metrics on their "
            "real loss curves." if match else
            "The book's Multi-Power Law does not reproduce all of Luo et al.'s published test metrics (see the chapter).")

    def decay() -> str:
        low, high = get(chapter, "schedule_token_gap_interval")
        return (f" On the suite's WSD runs ({get(chapter, 'schedule_families')} families, 95 % t intervals over "
                f"families), decayed minus constant-rate QiD is "
                f"{_listed_interval(get, chapter, 'schedule_matched_tokens', 'at the same tokens')} and "
                f"{_listed_interval(get, chapter, 'schedule_matched_loss', 'at the same 16-bit loss')}, where the "
                f"constant-rate run has seen {get(chapter, 'schedule_token_gap'):.2f}× [{low:.2f}, {high:.2f}] the "
                f"tokens. {get(chapter, 'schedule_verdict')}")

    return text + _optional(decay)


def _measurement(get) -> str:
    chapter = "02_measure_qid"
    bits = get(chapter, "measure_lowest_bits")
    return (f"Paired evaluation makes QiD's standard error **{get(chapter, 'measure_paired_se_gain'):.0f}× smaller** "
            f"than comparing two independent losses. At {bits} bits on the chapter's small model, GPTQ's QiD is "
            f"{get(chapter, 'measure_gptq_qid'):.3g} nats/token against RTN's {get(chapter, 'measure_rtn_qid'):.3g} "
            f"(ratio {get(chapter, 'measure_gptq_rtn_ratio'):.2f}).")


def _suite(get) -> str:
    chapter = "03_mini_pythia_suite"
    text = (f"The book trains its own mini-Pythia suite, N crossed with D/N: {get(chapter, 'suite_checkpoints')} "
            f"checkpoints spanning {get(chapter, 'suite_decades'):.1f} decades of model size, with "
            f"{get(chapter, 'suite_qid_cells'):,} measured QiD cells.")

    def trends() -> str:
        return (f" QiD rises with training tokens in {get(chapter, 'suite_rises_with_d')} size × bit-width slopes "
                f"(GPTQ, 2–3 bits, 95 % t intervals); at fixed tokens it falls with N in "
                f"{get(chapter, 'suite_fixed_d_negative_share'):.0%} of the slopes, but with four sizes the sign of "
                f"α is not resolved.")

    return text + _optional(trends)


def _fitter(get) -> str:
    chapter = "04_fitter_validation"
    text = (f"Nominal 95 % intervals of the fitter covered the true parameters "
            f"{get(chapter, 'coverage_wald'):.0%} (lmfit Wald) and {get(chapter, 'coverage_bootstrap'):.0%} "
            f"(bootstrap) of the time on synthetic data.")
    if get(chapter, "chinchilla_available"):
        worst = max(get(chapter, f"chinchilla_{name}_relative_error") for name in ("E", "alpha", "beta"))
        text += (f" Hoffmann et al.'s procedure run through the same fitter reproduces Epoch AI's Chinchilla refit "
                 f"(E, α, β) within {worst:.2%}.")
    else:
        text += " The Chinchilla refit was skipped in this build (Epoch AI's extracted points were absent)."
    return text


def _training_precision(get) -> str:
    from qid.laws.registry import get_law

    chapter = "07_training_precision"
    low, high = get(chapter, "qat_gamma_w_profile_region")
    published = get_law("kumar_effective_parameters").parameter_sets["published"].values["gamma_w"]
    lower = "no lower limit" if get(chapter, "qat_gamma_w_profile_low_open") else f"from {low:.3g}"
    return (f"Training with 3–16-bit weights ({get(chapter, 'qat_runs_measured')} quantization-aware runs, three sizes, "
            f"two budgets) resolves no cost of low-precision weights at our scale: the runs allow Kumar et al.'s γ_w "
            f"with {lower} up to {high:.3g} (95 % profile likelihood), which "
            f"{'includes' if get(chapter, 'qat_gamma_w_profile_covers_kumar') else 'excludes'} their {published}.")


def _formats(get) -> str:
    chapter = "08_float_formats"
    low, high = get(chapter, "formats_pooled_excess_interval")
    separated = get(chapter, "formats_pooled_separated")
    return (f"At about 4 bits per weight, scales included, on {get(chapter, 'formats_checkpoints')} checkpoints of the "
            f"`{get(chapter, 'formats_preset')}` suite, pooled from D/N {get(chapter, 'formats_min_rung')} on "
            f"({get(chapter, 'formats_pooled_runs')} training runs) among the cells that store at most "
            f"{get(chapter, 'formats_equal_storage_bits')} bits per weight, the cell that loses least is "
            f"{get(chapter, 'formats_pooled_best')}; the runner-up, {get(chapter, 'formats_pooled_runner_up')}, loses "
            f"{get(chapter, 'formats_pooled_excess'):+.2g} nats/token more (95 % interval [{low:+.2g}, {high:+.2g}]: "
            f"{'resolved' if separated else 'not resolved'})." + _optional(_formats_holdout(get)))


def _formats_holdout(get) -> Callable[[], str]:
    def text() -> str:
        scores = get("08_float_formats", "formats_holdout_rms_z_range")
        if not scores:
            return ""
        return (f" On held-out checkpoints (largest N, largest D/N) the per-format laws k·D^β/N^α score an RMS z of "
                f"{scores[0]:.2g}–{scores[1]:.2g}"
                + (" (1 is calibrated): they summarise this ladder; they are not laws to project with."
                   if scores[1] > 1.5 else ", as calibrated laws should."))
    return text


STATEMENTS: list[tuple[str, str, Callable]] = [
    ("Table 1", "01_published_laws", _table1),
    ("Our exponents", "05_fits_on_our_data", _exponents),
    ("Measuring QiD", "02_measure_qid", _measurement),
    ("Our suite", "03_mini_pythia_suite", _suite),
    ("The fitter", "04_fitter_validation", _fitter),
    ("Schedules", "06_learning_rate_schedules", _schedules),
    ("Training precision", "07_training_precision", _training_precision),
    ("Floating-point formats", "08_float_formats", _formats),
]


def statements(values: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(title, chapter, Markdown) for every statement; a placeholder where a number is not glued."""
    get = value_getter(values)
    rows = []
    for title, chapter, build in STATEMENTS:
        try:
            text = build(get)
        except Missing as missing:
            text = placeholder_text(missing, values)
        rows.append((title, chapter, text))
    return rows


# --- the exponent overview --------------------------------------------------------------------------------------


def _t_quantile(confidence: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, max(dof, 1)))


def _fit_exponents(path: Path) -> dict[str, tuple[float, float, float]]:
    """exponent -> (estimate, low, high): the bootstrap interval, else the estimate ± t·stderr."""
    content = json.loads(path.read_text())
    confidence = content.get("confidence") or 0.95
    intervals = content.get("intervals") or {}
    stderr = content.get("stderr") or {}
    dof = int(content.get("n_points", 0)) - int(content.get("n_free", 0))
    result = {}
    for name in EXPONENTS:
        if name not in content.get("params", {}):
            continue
        value = float(content["params"][name])
        if intervals.get(name):
            low, high = intervals[name]
        elif stderr.get(name) is not None:
            half = _t_quantile(confidence, dof) * float(stderr[name])
            low, high = value - half, value + half
        else:
            low = high = math.nan
        result[name] = (value, float(low), float(high))
    return result


def exponent_rows(fits_dir: Path) -> list[dict]:
    """One row per (source, exponent): published, Table-1-implied per bit, and ours per quantizer / bit."""
    from qid.laws.registry import get_law

    rows = []
    for name, value in get_law("ouyang_unified").parameter_sets["published"].values.items():
        if name in EXPONENTS:
            rows.append({"source": "published (Ouyang et al.)", "group": "published", "exponent": name,
                         "estimate": float(value), "low": math.nan, "high": math.nan})
    for pattern, group, label in ((TABLE1_FITS, "table1", "Table 1 implied, {bits}"),
                                  (OWN_UNIFIED_FITS, "ours", "ours, {method} (all bits)"),
                                  (OWN_PER_BIT_FITS, "ours_per_bit", "ours, {method}, {bits}")):
        for path in sorted(Path(fits_dir).glob(pattern)):
            parts = path.stem.split("_")
            bits = next((part[1:] + " bits" for part in parts if part.startswith("P") and part[1:].isdigit()), "")
            method = parts[-1].upper() if group != "table1" else ""
            for exponent, (value, low, high) in _fit_exponents(path).items():
                rows.append({"source": label.format(bits=bits, method=method), "group": group, "exponent": exponent,
                             "estimate": value, "low": low, "high": high, "file": str(path.name)})
    return rows


GROUP_STYLE = {"published": ("k", "D"), "table1": ("#7f8c8d", "s"), "ours": ("#2980b9", "o"),
               "ours_per_bit": ("#e67e22", "o")}


def exponent_figure(rows: list[dict], path: Path) -> Path:
    """A 2×2 grid at the page's width: α, β and γ, one row per source with horizontal bars for the intervals, and
    the key to the colours in the fourth panel (a 1×3 row was unreadable on a phone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from qid.chapters.plots import PAGE_FIGURE_WIDTH, save_figure, subplots

    sources = list(dict.fromkeys(row["source"] for row in rows))
    row_height = 0.24 * len(sources) + 0.8
    fig, axes = subplots(2, 2, figsize=(PAGE_FIGURE_WIDTH, 2 * row_height), sharey=True)
    for ax, exponent in zip(axes.flat, EXPONENTS):
        for row in (row for row in rows if row["exponent"] == exponent):
            color, marker = GROUP_STYLE[row["group"]]
            y = sources.index(row["source"])
            has_interval = math.isfinite(row["low"]) and math.isfinite(row["high"])
            error = [[row["estimate"] - row["low"]], [row["high"] - row["estimate"]]] if has_interval else None
            ax.errorbar(row["estimate"], y, xerr=error, fmt=marker, color=color, capsize=3, ms=5)
        published = next((row["estimate"] for row in rows if row["group"] == "published" and row["exponent"] == exponent), None)
        if published is not None:
            ax.axvline(published, color="k", lw=0.8, ls=":")
        ax.set_xlabel(EXPONENT_SYMBOLS[exponent])
    axes[0, 0].set_yticks(range(len(sources)), sources)
    axes[0, 0].invert_yaxis()
    key = axes[1, 1]
    key.axis("off")
    labels = {"published": "published", "table1": "Table 1 implied", "ours": "ours, all bits", "ours_per_bit": "ours, one bit width"}
    key.legend(handles=[Line2D([], [], color=color, marker=marker, ls="none", label=labels[group])
                        for group, (color, marker) in GROUP_STYLE.items()], loc="center", frameon=False)
    save_figure(fig, path)
    plt.close(fig)
    return path


# --- the page ------------------------------------------------------------------------------------------------


def findings_markdown(values: dict[str, dict], rows: list[dict], figure: str | None) -> str:
    from qid.chapters.answer import answer_lines  # the answer first (imported here: answer.py reads this module)
    from qid.laws.reference import scale_gap_statement

    lines = answer_lines(values) + ["## What the book found", ""]
    for title, chapter, text in statements(values):
        lines.append(f"- **{title}** ({{doc}}`chapter {chapter[:2]} </chapters/{chapter}>`). {text}")
    lines += ["", f"**Scale.** {scale_gap_statement()} A trend that does not reproduce at our scale is reported as a "
              "finding, not hidden.", ""]
    if figure:
        lines += [
            "```{figure} " + figure,
            ":name: findings-exponents",
            ":width: 100%",
            "",
            "The exponents of the QiD law $k\\,D^{\\beta}/(N^{\\alpha}P^{\\gamma})$: published by Ouyang et al. (black "
            "diamond, dotted line), implied by their Table 1 for each bit width (grey squares: per-bit laws fitted to the "
            "table; no γ), and fitted to the book's own suite per quantizer (blue: all bit widths; orange: one bit "
            "width). Bars are 95 % intervals (bootstrap where the fit has one, otherwise ± t·standard error); "
            "dimensionless exponents.",
            "```",
            "",
        ]
    sources = sorted({row.get("file") for row in rows if row.get("file")})
    lines.append(f"The figure reads the law registry and {len(sources)} committed fit files in `data/fits/` (chapter 01 "
                 "writes the Table 1 fits, chapter 05 the suite fits); the statements read the numbers the chapters "
                 "glue in this build.")
    return "\n".join(lines) + "\n"


def write_findings(root: Path = REPO_ROOT, output_dir: str | Path = "chapters") -> Path:
    """Write `output_dir/findings.md` and its figure from the executed chapters and the committed fits."""
    from qid.common.atomicio import atomic_write_text

    root = Path(root)
    output_dir = Path(output_dir) if Path(output_dir).is_absolute() else root / output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = exponent_rows(root / "data" / "fits")
    figure = None
    if rows:
        exponent_figure(rows, output_dir / EXPONENTS_FIGURE)
        figure = f"/{output_dir.relative_to(root).as_posix()}/{EXPONENTS_FIGURE}" if output_dir.is_relative_to(root) \
            else str(output_dir / EXPONENTS_FIGURE)
    target = output_dir / FINDINGS_FILE
    atomic_write_text(target, findings_markdown(chapter_values(output_dir), rows, figure))
    return target


def main() -> int:
    from qid.chapters.answer import answer_lines

    values = chapter_values(REPO_ROOT / "chapters")
    print("\n".join(answer_lines(values)))
    for title, chapter, text in statements(values):
        print(f"- {title} ({chapter}): {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
