# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The laws fitted to our own measurements
#
# ## Overview
#
# Chapter 1 evaluated the QiD laws of {cite:t}`ouyang2024lowbit` with their published parameters. Here we fit
# the same laws, and the PTQ degradation law of {cite:t}`kumar2024precision`, to the QiD the book measured on
# its own mini-Pythia suite (chapter 3), with the fitter validated in chapter 4 {cite:p}`newville2014lmfit`:
#
# 1. which measured rows enter the fits, and how many are dropped;
# 2. the three separate laws (QiD against $D$, $N$ and $P$ one at a time), the unified law, per-bit laws and
#    Kumar et al.'s $\delta_{\mathrm{PTQ}}$: fit reports, residuals, our exponents beside the published ones
#    with bootstrap intervals;
# 3. which law describes our data best (AIC, BIC, and the error when the largest sizes or token counts are
#    held out and predicted);
# 4. Table 1 and Figure 1 of the paper recomputed from **our** fits, with bands, beside the published
#    versions;
# 5. how much the conclusions depend on the choices made on the way (significance threshold, quantizer,
#    loss, warmup checkpoints, schedule designs).
#
# Our models have at most a few million parameters and have seen a few million tokens: **thousands of
# times smaller than Pythia** in both. Every comparison with the paper below is made across that gap, and
# every projection to Pythia-sized or larger models is an extrapolation over several decades.
#
# ## Prerequisites
#
# - Chapter 3 and its measured table `data/suite/<preset>_qid.csv` (one row per checkpoint, quantizer and
#   bit width, with QiD and its standard error; columns in `data/README.md`). Any table of that format works
#   (parameter `QID_TABLE`).
# - Chapter 1 (the published laws, Table 1 in `data/reference/ouyang2024_table1.csv`) and chapter 4 (the
#   fitter).
# - Writes the main fits to `data/fits/<preset>_suite_*_<method>.json` (loadable by `qid predict --params PATH`).
# - CPU only; a few minutes with the default number of bootstrap replicates.

# %% [markdown]
# ## Imports

# %%
import math
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from qid import analysis, suite
from qid.laws import OUYANG_SEPARATE_EXPONENTS, get_law
from qid.plots import bit_color, log_axes, subplots
from qid.project import tokens_for_rows
from qid.reference import load_ouyang_table1

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
QID_TABLE = "data/suite/cpu_qid.csv"  # measured QiD table (qid.suite tidy format); default: the committed CPU suite
FITS_DIR = "data/fits"  # where the main fits are written as JSON; None writes nothing
METHOD = "gptq"  # quantizer of the main fits: "gptq" (as in the paper) or "rtn"
COMPARISON_METHOD = "rtn"  # quantizer refitted in the sensitivity check; None skips it
BITS = [2, 3, 4]  # weight bit widths fitted (as in the paper: 2, 3, 4; 8 bits is mostly within noise at our scale)
DESIGNS = ["cosine"]  # schedule designs whose checkpoints enter the main fits (the paper: Pythia cosine runs)
PHASES = ["intermediate", "final"]  # checkpoint phases of the main fits: every checkpoint of a cosine run
OTHER_PHASES = {"annealed": ["annealed"], "wsd": ["stable", "decayed"]}  # design -> phases added in the design check
DROP_WARMUP = True  # drop checkpoints taken inside the learning-rate warmup of the preset: their lr is still rising
MIN_SIGMA = 2.0  # a row enters the fits only if qid > MIN_SIGMA * qid_se (standard errors; log residuals need QiD > 0)
SIGMA_THRESHOLDS = [1.0, 2.0, 3.0, 5.0]  # significance thresholds of the sensitivity check (standard errors)
LOSS = "least_squares"  # objective of the main fits on log-QiD residuals: "least_squares" or "huber"
HUBER_DELTA = 0.1  # Huber threshold in log units (0.1 ~ 10 % of QiD, about the measurement noise of a kept row)
BOOTSTRAP_SAMPLES = 200  # bootstrap replicates (resampling rows) for intervals and bands (count)
CONFIDENCE = 0.95  # coverage of every interval and band (fraction)
SEED = 0  # seed of the bootstrap
SLICE_TOLERANCE = 0.05  # rows whose other variables agree within this relative tolerance form one slice
TABLE1_CSV = "data/reference/ouyang2024_table1.csv"  # Table 1 of the paper (thresholds and published tokens)
PROJECTION_SIZES = [7e9, 7e10, 4.05e11]  # model sizes N for the Figure-1-style projection (parameters)
MAX_TOKENS = 1e14  # right end of the projection (training tokens)
PYTHIA_N_RANGE = [7.0e7, 1.2e10]  # sizes of Pythia (parameters), for the scale gap: 70M to 12B
PYTHIA_MAX_TOKENS = 3.0e11  # training tokens of Pythia (300B)

# %%
if METHOD not in ("gptq", "rtn", "awq"):
    raise ValueError(f"METHOD must be 'gptq', 'rtn' or 'awq', got {METHOD!r}")
if COMPARISON_METHOD not in (None, "gptq", "rtn", "awq"):
    raise ValueError(f"COMPARISON_METHOD must be None, 'gptq', 'rtn' or 'awq', got {COMPARISON_METHOD!r}")
if not BITS or not all(isinstance(bits, int) and 2 <= bits <= 16 for bits in BITS):
    raise ValueError(f"BITS must be a non-empty list of integer bit widths in 2..16, got {BITS}")
if not DESIGNS or not set(DESIGNS) <= set(suite.DESIGNS):
    raise ValueError(f"DESIGNS must be a non-empty subset of {suite.DESIGNS}, got {DESIGNS}")
known_phases = {"intermediate", "final", "annealed", "stable", "decayed"}
if not PHASES or not set(PHASES) <= known_phases:
    raise ValueError(f"PHASES must be a non-empty subset of {sorted(known_phases)}, got {PHASES}")
if not all(design in suite.DESIGNS and set(phases) <= known_phases for design, phases in OTHER_PHASES.items()):
    raise ValueError(f"OTHER_PHASES must map designs {suite.DESIGNS} to phases {sorted(known_phases)}, got {OTHER_PHASES}")
if not MIN_SIGMA >= 0 or not SIGMA_THRESHOLDS or min(SIGMA_THRESHOLDS) < 0:
    raise ValueError(f"MIN_SIGMA and SIGMA_THRESHOLDS must be >= 0 standard errors, got {MIN_SIGMA}, {SIGMA_THRESHOLDS}")
if LOSS not in ("least_squares", "huber"):
    raise ValueError(f"LOSS must be 'least_squares' or 'huber', got {LOSS!r}")
if not HUBER_DELTA > 0:
    raise ValueError(f"HUBER_DELTA must be > 0 (log units), got {HUBER_DELTA}")
if not (isinstance(BOOTSTRAP_SAMPLES, int) and BOOTSTRAP_SAMPLES >= 10):
    raise ValueError(f"BOOTSTRAP_SAMPLES must be an integer >= 10, got {BOOTSTRAP_SAMPLES!r}")
if not 0.5 <= CONFIDENCE < 1:
    raise ValueError(f"CONFIDENCE must be a fraction in [0.5, 1), got {CONFIDENCE}")
if not 0 <= SLICE_TOLERANCE < 0.5:
    raise ValueError(f"SLICE_TOLERANCE must be a relative tolerance in [0, 0.5), got {SLICE_TOLERANCE}")
if not PROJECTION_SIZES or min(PROJECTION_SIZES) <= 0 or not MAX_TOKENS > 1e9:
    raise ValueError(f"PROJECTION_SIZES must be positive sizes and MAX_TOKENS > 1e9, got {PROJECTION_SIZES}, {MAX_TOKENS}")

measured = analysis.load_qid_table(QID_TABLE)
presets = sorted(measured["preset"].unique()) if "preset" in measured.columns else []
PRESET_NAME = presets[0] if len(presets) == 1 else "custom"
warmup_steps = suite.get_preset(PRESET_NAME).warmup_steps if PRESET_NAME in suite.PRESETS else 0
if DROP_WARMUP and "step" not in measured.columns:
    raise ValueError(f"{QID_TABLE}: DROP_WARMUP needs a column step; set DROP_WARMUP = False")
selection = dict(method=METHOD, bits=BITS, phases=PHASES, designs=DESIGNS, min_sigma=MIN_SIGMA,
                 min_step=warmup_steps if DROP_WARMUP else 0)
fit_options = dict(loss=LOSS, delta=HUBER_DELTA, bootstrap=BOOTSTRAP_SAMPLES, seed=SEED, confidence=CONFIDENCE,
                   slice_tolerance=SLICE_TOLERANCE)
unified_law, per_bit_law, kumar_law = get_law("ouyang_unified"), get_law("ouyang_per_bit"), get_law("kumar_ptq")
published = unified_law.parameter_sets["published"].values
published_kumar = kumar_law.parameter_sets["published"].values

# %% [markdown]
# ## Which rows enter the fits
#
# The choices, each a parameter above:
#
# - **Quantizer.** GPTQ {cite:p}`frantar2022gptq`, as in the paper; RTN is refitted in the sensitivity check.
# - **Checkpoints.** The paper fitted every GPTQ-quantized checkpoint of the Pythia suite
#   {cite:p}`biderman2023pythia`: intermediate checkpoints of one cosine run per size, mid-schedule, plus the
#   last. We use the same kind of points: the intermediate and final checkpoints of our cosine runs.
#   Checkpoints taken during the learning-rate warmup (their learning rate is still rising) are dropped when
#   `DROP_WARMUP` is set. The annealed and WSD designs belong to chapter 3; the sensitivity check says whether
#   adding their points would move the fit.
# - **Significance.** A QiD that is not clearly above zero cannot enter a fit of log QiD, and says nothing
#   about how QiD scales. A row is kept only if $\mathrm{QiD} > $ `MIN_SIGMA` standard errors of its paired
#   measurement. This drops the small QiDs selectively (the large models, the early checkpoints, the higher bit
#   widths), which biases what remains towards large QiD; the sensitivity check varies the threshold.

# %%
rows, account = analysis.select_fit_rows(measured, **selection)
n_points, n_dropped = int(len(rows)), int(account["dropped"].sum())
glue("fit_n_points", n_points, display=False)
glue("fit_n_dropped", n_dropped, display=False)
glue("fit_n_sizes", int(rows["N"].nunique()), display=False)
account.set_index("bits")

# %% tags=["hide-input"]
display(Markdown(
    f"Of {int(account['candidates'].sum())} {METHOD.upper()} rows at {', '.join(map(str, BITS))} bits from the "
    f"{' and '.join(DESIGNS)} checkpoints of `{QID_TABLE}`"
    + (f" (after step {warmup_steps}, the end of warmup)" if DROP_WARMUP and warmup_steps else "")
    + f", **{n_points} are significantly above zero** and enter the fits; {n_dropped} are dropped as within "
    f"{MIN_SIGMA:g} standard errors of zero."
))
if n_points:
    gap = analysis.scale_gap(rows, reference_N=PYTHIA_N_RANGE, reference_D=(0.0, PYTHIA_MAX_TOKENS))
    glue("scale_gap_N_factor", gap["N_factor"], display=False)
    glue("scale_gap_D_factor", gap["D_factor"], display=False)
    display(Markdown(
        f"The fitted rows span N = {gap['N_min']:,.0f} to {gap['N_max']:,.0f} non-embedding parameters "
        f"({gap['N_decades']:.2f} decades) and D = {gap['D_min']:,.0f} to {gap['D_max']:,.0f} training tokens "
        f"({gap['D_decades']:.2f} decades). Pythia spans {PYTHIA_N_RANGE[0]:.0e} to {PYTHIA_N_RANGE[1]:.1e} "
        f"parameters and up to {PYTHIA_MAX_TOKENS:.0e} tokens: its largest model is **{gap['N_factor']:,.0f} times** "
        f"our largest fitted model, and its token count **{gap['D_factor']:,.0f} times** ours."
    ))

# %% [markdown]
# ## The fits
#
# Every model is fitted to the same rows by least squares on log-QiD residuals (`LOSS`; Huber in the
# sensitivity check), from a grid of starts, with a seeded bootstrap over rows for intervals:
#
# - **unified**: $\mathrm{QiD} = k\,D^{\beta}/(N^{\alpha}P^{\gamma})$, the paper's main law;
# - **per-bit**: $\mathrm{QiD}_P = k_P\,D^{\beta_P}/N^{\alpha_P}$, one law per bit width (chapter 1 found
#   that the paper's Table 1 was computed from such laws);
# - **Kumar et al.'s** $\delta_{\mathrm{PTQ}} = C_T\,D^{\gamma_D}N^{-\gamma_N}e^{-P/\gamma_{\mathrm{post}}}$;
# - the three **separate laws**, QiD against one variable at a time. The paper prints only their exponents.
#   We fit them two ways: *pooled*, one prefactor for all rows (a law of one variable asked to describe
#   everything), and *within slices*, the reading of a one-factor-at-a-time law: one exponent shared by all
#   slices of the data in which the other two variables are fixed (e.g. every checkpoint of one size at one
#   bit width, for $D$), and one free prefactor per slice. The within-slice fit is closed-form least squares
#   in logs; its interval comes from the same kind of bootstrap.

# %%
law_fits = analysis.fit_law_set(rows, **fit_options)
unified_fit = law_fits.fits.get("unified")
kumar_fit = law_fits.fits.get("kumar")
per_bit_fits = law_fits.per_bit
if unified_fit is not None:
    print(unified_fit.fit_report())

# %% tags=["hide-input"]
if law_fits.skipped:
    display(Markdown("**Fits the rows cannot support** (skipped, with the reason):\n\n"
                     + "\n".join(f"- `{name}`: {reason}" for name, reason in law_fits.skipped.items())))
for bits, fit in per_bit_fits.items():
    print(f"--- {bits}-bit law")
    print(fit.fit_report())
if kumar_fit is not None:
    print("--- Kumar et al.'s delta_PTQ")
    print(kumar_fit.fit_report())

# %% [markdown]
# The main fits are saved as JSON for later chapters and the command line
# (`qid predict --law ouyang_unified --params data/fits/cpu_suite_unified_gptq.json --N 7e10 --D 1e14 --P 4`):

# %%
saved = {}
if FITS_DIR is not None:
    for name, fit in [("unified", unified_fit), ("kumar", kumar_fit),
                      *[(f"per_bit_P{bits}", fit) for bits, fit in per_bit_fits.items()]]:
        if fit is not None:
            saved[name] = fit.save(Path(FITS_DIR) / f"{PRESET_NAME}_suite_{name}_{METHOD}.json")
pd.DataFrame({"file": {name: str(path) for name, path in saved.items()}})

# %% [markdown]
# ## Our exponents beside the published ones
#
# Estimates with their standard errors (lmfit's covariance, or OLS for the within-slice fits) and
# `CONFIDENCE` bootstrap percentile intervals; "published" is the paper's value (for the per-bit laws: the
# unified law's, which holds at every bit width if the unified law is right; for Kumar et al.'s law: their
# published value, fitted on 30–220M-parameter models).

# %%
exponents = analysis.exponent_comparison(law_fits)
exponents.style.format({"estimate": "{:.4g}", "stderr": "{:.2g}", "low": "{:.4g}", "high": "{:.4g}", "published": "{:.4g}"})

# %% tags=["hide-input"]
def glue_exponent(model: str, name: str, key: str) -> None:
    match = exponents[(exponents["model"] == model) & (exponents["exponent"] == name)]
    if len(match):
        row = match.iloc[0]
        glue(key, float(row["estimate"]), display=False)
        glue(f"{key}_low", float(row["low"]) if np.isfinite(row["low"]) else None, display=False)
        glue(f"{key}_high", float(row["high"]) if np.isfinite(row["high"]) else None, display=False)


for name in ("alpha", "beta", "gamma"):
    glue_exponent("unified", name, f"unified_{name}")
for variable, name in (("D", "beta"), ("N", "alpha"), ("P", "gamma")):
    glue_exponent(f"slices_{variable}", name, f"slices_{name}")
for bits in per_bit_fits:
    glue_exponent(f"per_bit_P{bits}", "beta", f"per_bit_beta_P{bits}")
    glue_exponent(f"per_bit_P{bits}", "alpha", f"per_bit_alpha_P{bits}")

plotted = exponents[exponents["exponent"].isin(["alpha", "beta", "gamma"])]
if len(plotted):
    panels = [name for name in ("alpha", "beta", "gamma") if name in set(plotted["exponent"])]
    fig, axes = subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, name in zip(axes[0], panels):
        part = plotted[plotted["exponent"] == name].reset_index(drop=True)
        positions = np.arange(len(part))[::-1]
        has_interval = np.isfinite(part["low"]) & np.isfinite(part["high"])
        ax.errorbar(part["estimate"], positions,
                    xerr=np.where(has_interval, [part["estimate"] - part["low"], part["high"] - part["estimate"]], 0.0),
                    fmt="o", color="#34495e", capsize=3, label=f"ours ({CONFIDENCE:.0%} bootstrap)")
        ax.scatter(part["published"], positions, marker="x", color="#c0392b", zorder=3, label="published")
        ax.set_yticks(positions, part["model"])
        ax.set_xlabel(f"{name} (dimensionless exponent)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)

# %% [markdown]
# ## Which law describes our data best
#
# All models are compared on the same rows. AIC and BIC are computed from the sum of squared log residuals
# ($n\ln(\mathrm{RSS}/n)$ plus $2k$ or $k\ln n$ for $k$ free parameters; a within-slice model pays for every
# slice's prefactor). The extrapolation columns hold out the largest model size (or the largest token count),
# fit the rest and give the RMS log error of the prediction for the held-out rows (0.1 ≈ 10 %); they are
# blank where a model cannot predict a new value of that variable (a within-slice prefactor belongs to one
# slice).

# %%
comparison = analysis.compare_laws(law_fits)
comparison.style.format({column: "{:.3g}" for column in comparison.columns if comparison[column].dtype.kind == "f"})

# %% tags=["hide-input"]
if len(comparison):
    best = comparison.iloc[0]
    glue("best_law_aic", str(best["model"]), display=False)
    glue("best_law_bic", str(comparison.sort_values("bic").iloc[0]["model"]), display=False)
    for model in ("unified", "per_bit", "kumar"):
        match = comparison[comparison["model"] == model]
        for variable in ("N", "D"):
            column = f"holdout_{variable}_rms_log_error"
            if len(match) and column in match and np.isfinite(match[column].iloc[0]):
                glue(f"{model}_holdout_{variable}", float(match[column].iloc[0]), display=False)
    close = comparison[comparison["delta_aic"] < 2]["model"].tolist()
    unified_row = comparison[comparison["model"] == "unified"]
    display(Markdown(
        f"The lowest AIC is that of **{best['model']}** ({best['description']}), with an RMS log residual of "
        f"{best['rms_log_residual']:.3f}; "
        + (f"{', '.join(close[1:])} {'is' if len(close) == 2 else 'are'} within 2 AIC units of it. " if len(close) > 1 else "no other model is within 2 AIC units. ")
        + f"The lowest BIC, which penalises parameters more, is that of **{comparison.sort_values('bic').iloc[0]['model']}**. "
        + (f"The unified law's held-out errors are {unified_row['holdout_N_rms_log_error'].iloc[0]:.2f} (largest size) and "
           f"{unified_row['holdout_D_rms_log_error'].iloc[0]:.2f} (largest token count) in log units."
           if len(unified_row) and {'holdout_N_rms_log_error', 'holdout_D_rms_log_error'} <= set(unified_row.columns) else "")
    ))
else:
    glue("best_law_aic", "none", display=False)
    display(Markdown("**No law could be fitted**: the table has too few significant rows (see the skipped fits above). "
                     "Measure more checkpoints, a lower bit width, or lower `MIN_SIGMA`."))

# %% [markdown]
# ### Residuals
#
# Log residuals ($\log$ measured $-$ $\log$ fitted QiD) of the unified and per-bit laws against training tokens
# and model size. A law that describes the data leaves no trend; a bend against $D$ means QiD does not grow as
# a single power of tokens at our scale.

# %% tags=["hide-input"]
def residual_frame(fits: dict) -> pd.DataFrame:
    """Rows with the log residual of each fit (keyed by a label)."""
    frames = []
    for label, (fit, mask) in fits.items():
        part = rows[mask].copy()
        part["residual"] = np.log(part["qid"]) - np.log(fit.predict(N=part["N"].to_numpy(), D=part["D"].to_numpy(),
                                                                    P=part["P"].to_numpy()))
        part["fit"] = label
        frames.append(part)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


residual_fits = {}
if unified_fit is not None:
    residual_fits["unified"] = (unified_fit, np.ones(len(rows), dtype=bool))
if per_bit_fits:
    for bits, fit in per_bit_fits.items():
        residual_fits[f"per-bit P={bits}"] = (fit, (rows["P"] == bits).to_numpy())
residuals = residual_frame(residual_fits)
if len(residuals):
    fig, axes = subplots(2, 2, figsize=(9, 6), sharey=True)
    sizes = sorted(rows["N"].unique())
    markers = dict(zip(sizes, "osD^v<>p"))
    for row_index, kind in enumerate(["unified", "per-bit"]):
        part = residuals[residuals["fit"].str.startswith(kind)]
        for col_index, variable in enumerate(["D", "N"]):
            ax = axes[row_index][col_index]
            for (bits, size), group in part.groupby(["P", "N"]):
                ax.scatter(group[variable], group["residual"], color=bit_color(int(bits)), marker=markers.get(size, "o"),
                           s=22, label=f"{int(bits)}-bit, N={size:,.0f}" if col_index == 0 else None)
            ax.axhline(0, color="0.3", lw=0.8)
            log_axes(ax, y=False)
            ax.set_xlabel("training tokens D" if variable == "D" else "non-embedding parameters N")
            ax.set_title(f"{kind} law", fontsize=10)
        axes[row_index][0].set_ylabel("log residual (nats ratio)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
else:
    display(Markdown("No residuals to show: neither the unified nor a per-bit law could be fitted."))

# %% [markdown]
# ### The fits in our own regime
#
# Measured QiD (points with $\pm 2$ standard errors; hollow: dropped as not significant) and the unified fit
# (lines, with its bootstrap band) for each size and bit width. Right of the dotted line, the fit is extrapolated
# beyond the largest token count of any fitted row.

# %% tags=["hide-input"]
if unified_fit is not None:
    candidates = analysis.select_fit_rows(measured, **{**selection, "min_sigma": 0.0})[0]
    all_candidates = measured[(measured["method"] == METHOD) & measured["bits"].isin(BITS)
                              & measured["phase"].isin(PHASES) & measured["design"].isin(DESIGNS)]
    sizes = sorted(rows["N"].unique())
    fig, axes = subplots(1, len(sizes), figsize=(3.3 * len(sizes), 3.6), sharey=True, squeeze=False)
    d_max = rows["D"].max()
    grid = np.logspace(np.log10(rows["D"].min()) - 0.3, np.log10(d_max) + 1.0, 80)
    for ax, size in zip(axes[0], sizes):
        for bits in BITS:
            color = bit_color(bits)
            kept = rows[(rows["N"] == size) & (rows["P"] == bits)]
            dropped = all_candidates[(all_candidates["N"] == size) & (all_candidates["bits"] == bits)
                                     & ~(all_candidates["qid"] > MIN_SIGMA * all_candidates["qid_se"])
                                     & (all_candidates["qid"] > 0)]
            ax.errorbar(kept["D"], kept["qid"], yerr=2 * kept["qid_se"], fmt="o", color=color, ms=4, capsize=2,
                        label=f"{bits}-bit")
            ax.scatter(dropped["tokens"], dropped["qid"], facecolors="none", edgecolors=color, s=18)
            prediction, low, high = analysis.prediction_band(unified_fit, CONFIDENCE, N=size, D=grid, P=bits)
            ax.plot(grid, prediction, color=color, lw=1.2)
            if np.isfinite(low).all():
                ax.fill_between(grid, low, high, color=color, alpha=0.15, lw=0)
        ax.axvline(d_max, color="0.3", ls=":", lw=1)
        log_axes(ax)
        ax.set_xlabel("training tokens D")
        ax.set_title(f"N = {size:,.0f}", fontsize=10)
    axes[0][0].set_ylabel("QiD (nats per token)")
    axes[0][-1].legend(fontsize=8, loc="lower right")

# %% [markdown]
# ## Table 1 from our fits
#
# The paper's Table 1 asks how many training tokens a 1B–405B model can take before its QiD reaches 0.2–0.5
# nats. Below, the same cells are solved from our unified law and from our per-bit laws, with `CONFIDENCE`
# bootstrap intervals, beside the published values (trillions of tokens). Table 1 uses nominal sizes
# (chapter 1); our $N$ counts non-embedding parameters, a difference far smaller than the extrapolation
# itself, which spans the full scale gap stated above.

# %%
table1 = load_ouyang_table1(TABLE1_CSV)
threshold_rows = {}
if unified_fit is not None:
    threshold_rows["ours, unified"] = analysis.tokens_to_threshold_table(
        table1, {bits: unified_fit for bits in table1["P"].unique()}, CONFIDENCE)
if per_bit_fits:
    threshold_rows["ours, per-bit"] = analysis.tokens_to_threshold_table(table1, per_bit_fits, CONFIDENCE)
projected_table1 = table1[["size", "bits", "qid_threshold", "tokens_trillions"]].rename(
    columns={"tokens_trillions": "published"})
for label, frame in threshold_rows.items():
    projected_table1[label] = frame["tokens"].to_numpy() / 1e12
    projected_table1[f"{label} low"] = frame["tokens_low"].to_numpy() / 1e12
    projected_table1[f"{label} high"] = frame["tokens_high"].to_numpy() / 1e12
projected_table1.style.format({column: "{:.3g}" for column in projected_table1.columns if projected_table1[column].dtype.kind == "f"}).hide(axis="index")

# %% tags=["hide-input"]
if threshold_rows:
    def ratio_summary(label: str) -> str:
        ratio = projected_table1[label] / projected_table1["published"]
        finite = ratio[np.isfinite(ratio) & (ratio > 0)]
        if not len(finite):
            return f"{label}: no finite cell"
        glue(f"table1_{label.split(', ')[1].replace('-', '_')}_median_ratio", float(finite.median()), display=False)
        return (f"{label}: median ratio to the published tokens {finite.median():.3g} "
                f"(range {finite.min():.2g}–{finite.max():.2g})")

    display(Markdown(
        "Ratio of our projected tokens to the published ones, over the cells of Table 1 — "
        + "; ".join(ratio_summary(label) for label in threshold_rows) + ". "
        + "These projections extrapolate our fits from at most a few million parameters and tokens to models "
        "of 1B–405B parameters trained on trillions of tokens; the bootstrap intervals show only the "
        "statistical part of the uncertainty, not whether the power law holds across that gap."
    ))
else:
    display(Markdown("No Table 1 projection: neither the unified nor a per-bit law could be fitted to these rows."))

# %% [markdown]
# ## Figure 1 from our fits
#
# QiD of 7B, 70B and 405B models as training grows to $10^{14}$ tokens: our unified law (solid, with its
# bootstrap band) beside the published unified law (dashed). The grey band on the left marks the token range of
# our fitted rows; everything else, and every model size here, is extrapolation (our largest model has a few
# million parameters).

# %% tags=["hide-input"]
projection_rows = []
if unified_fit is not None:
    tokens = np.logspace(np.log10(max(1.0, rows["D"].min())), math.log10(MAX_TOKENS), 150)
    fig, axes = subplots(1, len(PROJECTION_SIZES), figsize=(4.0 * len(PROJECTION_SIZES), 4.0), sharey=True, squeeze=False)
    for ax, size in zip(axes[0], PROJECTION_SIZES):
        ax.axvspan(rows["D"].min(), rows["D"].max(), color="0.85", label="token range of our data")
        for bits in BITS:
            color = bit_color(bits)
            prediction, low, high = analysis.prediction_band(unified_fit, CONFIDENCE, N=size, D=tokens, P=bits)
            ax.plot(tokens, prediction, color=color, label=f"{bits}-bit, our fit")
            if np.isfinite(low).all():
                ax.fill_between(tokens, low, high, color=color, alpha=0.15, lw=0)
            ax.plot(tokens, unified_law(published, N=size, D=tokens, P=bits), color=color, ls="--", label=f"{bits}-bit, published")
            end = analysis.prediction_band(unified_fit, CONFIDENCE, N=size, D=np.array([MAX_TOKENS]), P=bits)
            projection_rows.append({"N": size, "bits": bits, "ours": float(end[0][0]), "ours low": float(end[1][0]),
                                    "ours high": float(end[2][0]),
                                    "published": float(unified_law(published, N=size, D=MAX_TOKENS, P=bits))})
        log_axes(ax)
        ax.set_ylim(1e-6, 1e3)
        ax.set_xlabel("training tokens D")
        ax.set_title(f"N = {size:.3g} parameters", fontsize=10)
    axes[0][0].set_ylabel("predicted QiD (nats per token)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
else:
    display(Markdown("No Figure 1 projection: the unified law could not be fitted to these rows."))

# %% [markdown]
# QiD at $D = $ `MAX_TOKENS` (nats per token), ours with its bootstrap interval, and the published law's:

# %% tags=["hide-input"]
projection = pd.DataFrame(projection_rows)
if len(projection):
    largest = projection[projection["N"] == max(PROJECTION_SIZES)]
    for row in largest.itertuples(index=False):
        glue(f"projection_{int(row.bits)}bit_largest_ours", row.ours, display=False)
    display(projection.style.format({"N": "{:.3g}", "ours": "{:.3g}", "ours low": "{:.3g}", "ours high": "{:.3g}",
                                     "published": "{:.3g}"}).hide(axis="index"))

# %% [markdown]
# ## How much the conclusions depend on the choices
#
# The unified law and the within-slice token exponent refitted (point estimates with lmfit or OLS standard
# errors, no bootstrap) with one choice changed at a time: the significance threshold, the quantizer, Huber
# instead of least squares, the warmup checkpoints kept, and the points of the other schedule designs added.

# %%
variants = {f"main ({MIN_SIGMA:g} σ, {METHOD}, {LOSS})": {}}
for sigma in SIGMA_THRESHOLDS:
    if sigma != MIN_SIGMA:
        variants[f"threshold {sigma:g} σ"] = {"min_sigma": sigma}
if COMPARISON_METHOD and COMPARISON_METHOD != METHOD:
    variants[f"{COMPARISON_METHOD} instead of {METHOD}"] = {"method": COMPARISON_METHOD}
other_loss = "huber" if LOSS == "least_squares" else "least_squares"
variants[f"{other_loss} (δ = {HUBER_DELTA:g})" if other_loss == "huber" else other_loss] = {"loss": other_loss}
if DROP_WARMUP and warmup_steps:
    variants["warmup checkpoints kept"] = {"min_step": 0}
for design, phases in OTHER_PHASES.items():
    if design not in DESIGNS and (measured["design"] == design).any():
        variants[f"+ {design} points"] = {"designs": [*DESIGNS, design], "phases": [*PHASES, *phases]}
sensitivity = analysis.sensitivity_table(measured, selection, variants, loss=LOSS, delta=HUBER_DELTA,
                                         slice_tolerance=SLICE_TOLERANCE)
sensitivity.drop(columns=["note"]).style.format(
    {column: "{:.3g}" for column in sensitivity.columns if sensitivity[column].dtype.kind == "f"}).hide(axis="index")

# %% tags=["hide-input"]
threshold_part = sensitivity[sensitivity["variant"].str.startswith(("main", "threshold"))]
finite_beta = threshold_part["unified beta"].dropna()
if len(finite_beta) >= 2:
    spread = float(finite_beta.max() - finite_beta.min())
    typical_se = float(np.nanmedian(threshold_part["unified beta stderr"]))
    glue("threshold_beta_spread", spread, display=False)
    display(Markdown(
        f"Across significance thresholds of {', '.join(f'{s:g}' for s in SIGMA_THRESHOLDS)} standard errors, the "
        f"unified law's token exponent β ranges over {finite_beta.min():.3f}–{finite_beta.max():.3f} (a spread of "
        f"{spread:.3f}, against a typical standard error of {typical_se:.3f}): "
        + ("**the threshold does not change the conclusion about β**." if spread <= 2 * typical_se else
           "**the threshold matters**: raising it keeps only the largest QiDs, and β moves by more than two "
           "standard errors. Conclusions about β hold only as stated for the main threshold.")
    ))
notes = sensitivity[sensitivity["note"] != ""]
if len(notes):
    display(Markdown("Variants with fits the rows could not support:\n\n"
                     + "\n".join(f"- {row.variant}: {row.note}" for row in notes.itertuples(index=False))))

# %% [markdown]
# ## Summary

# %% tags=["hide-input"]
lines = [f"- **{n_points} measured {METHOD.upper()} rows** entered the fits ({n_dropped} dropped as not "
         f"significantly above zero at {MIN_SIGMA:g} σ), from models of at most {rows['N'].max():,.0f} parameters "
         f"trained on at most {rows['D'].max():,.0f} tokens." if n_points else
         f"- **No measured row** of `{QID_TABLE}` is significantly above zero at {MIN_SIGMA:g} σ: nothing could be fitted."]
if unified_fit is not None:
    ci = unified_fit.intervals or {}

    def with_interval(name: str) -> str:
        interval = ci.get(name)
        text = f"{unified_fit.params[name]:.3g}"
        return text + (f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else "")

    lines.append(f"- Unified law on our data: α = {with_interval('alpha')}, β = {with_interval('beta')}, "
                 f"γ = {with_interval('gamma')} ({CONFIDENCE:.0%} bootstrap intervals); published α = {published['alpha']}, "
                 f"β = {published['beta']}, γ = {published['gamma']}.")
    inside = exponents[exponents["model"] == "unified"].set_index("exponent")["published inside interval"]
    lines.append("- Published exponents inside our intervals: "
                 + ", ".join(f"{name} {'yes' if flag else 'no'}" for name, flag in inside.items()) + ".")
if law_fits.slices:
    lines.append("- Separate laws within slices: " + ", ".join(
        f"{fit.exponent_name} = {fit.exponent:.3g}" + (f" [{fit.interval[0]:.3g}, {fit.interval[1]:.3g}]" if fit.interval else "")
        + f" (published {fit.published})" for fit in law_fits.slices.values()) + ".")
if len(comparison):
    lines.append(f"- Best law by AIC: **{comparison.iloc[0]['model']}**; by BIC: "
                 f"**{comparison.sort_values('bic').iloc[0]['model']}**.")
if "gap" in globals() and n_points:
    lines.append(f"- Scale gap: Pythia's largest model is {gap['N_factor']:,.0f}× our largest fitted model and its "
                 f"300B tokens are {gap['D_factor']:,.0f}× our largest token count; every projection to Table 1 "
                 "or Figure 1 sizes is an extrapolation across that gap.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## What's next
#
# The fits saved in `data/fits/` can be evaluated from the command line (`qid predict --params PATH`). A suite
# trained further (the GPU preset: more tokens per model, a decade more in $N$) narrows the extrapolation; the
# design comparison of chapter 3 says whether the token exponent is a property of quantization or of the
# learning-rate schedule.
#
# ## References
#
# {cite:t}`ouyang2024lowbit`, {cite:t}`kumar2024precision`, {cite:t}`frantar2022gptq`,
# {cite:t}`biderman2023pythia`, {cite:t}`hoffmann2022chinchilla`, {cite:t}`besiroglu2024chinchilla`,
# {cite:t}`catalan2025dynamics`, {cite:t}`newville2014lmfit`. Full entries are in the bibliography.
