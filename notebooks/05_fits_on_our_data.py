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
# its own mini-Pythia suite (chapter 3), with the fitter validated in chapter 4 {cite:p}`newville2014lmfit`.
# Three rules govern every number below:
#
# 1. **Every row stays in.** A QiD within noise of zero, or below it, is a measurement too. Fits are made in
#    linear QiD space, each residual divided by that row's standard error, so small and negative values count
#    with the weight their precision earns. (Dropping rows with QiD < 2 SE and fitting logs keeps only the rows
#    that noise pushed up, and biases the exponents; `tests/test_fit_recovery.py` shows it on data with a
#    known answer.)
# 2. **Every error is carried.** A row's variance is the sum of what the suite measured: eval windows, the
#    calibration seed and the training seed. Intervals come from a bootstrap over training lineages (and eval
#    windows), because rows of one training run are not independent.
# 3. **Comparisons are fair.** Laws are ranked by AICc and BIC on the same rows, and scored on one common
#    hold-out; projections carry bands, mark where the data end, and never pass the loss of a uniform guess
#    without a flag.
#
# Our models have at most a few hundred thousand non-embedding parameters and have seen at most tens of
# millions of tokens, far below Pythia: the factor is computed once (`qid.laws.reference.scale_gap`) and stated in
# the summary and on the landing page. Every comparison with the paper is made across that gap.
#
# ## Prerequisites
#
# - Chapter 3 and its measured table `data/suite/cpu_qid.csv` (one row per checkpoint, quantizer, bit width and
#   calibration seed; columns in `data/README.md`), and optionally the eval-window losses
#   `data/suite/cpu_window_losses.csv.gz`. A `qid measure` output works too (parameter `QID_TABLE`), as does
#   `QID_TABLE = "synthetic"`, a stand-in with known truth (`qid.suite.synthetic`) for trying the chapter out.
# - Chapter 1 (the published laws) and chapter 4 (the fitter).
# - Writes the fits to `data/fits/<preset>_suite_*_<method>.json` when run on the measured table.
# - CPU only; a few minutes with the default number of bootstrap replicates.

# %% [markdown]
# ## Imports

# %% tags=["hide-input"]
import math
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from qid.chapters import suite_fits as suitefits
from qid.fitting.errormodel import window_bootstrap_qid
from qid.laws.registry import get_law
from qid.chapters.plots import bit_color, log_axes, subplots
from qid.laws.projection import capped_qid, critical_data_size, critical_data_table, uniform_guess_loss
from qid.laws.reference import scale_gap
from qid.suite.synthetic import synthetic_suite_tables
from qid.common.csvtables import DataError, load_table

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
QID_TABLE = "data/suite/cpu_qid.csv"  # measured QiD table (suite or `qid measure` format), or "synthetic"
WINDOW_LOSSES = "data/suite/cpu_window_losses.csv.gz"  # per-window losses for the window bootstrap; None skips it
FITS_DIR = "data/fits"  # where the fits are written as JSON (never for the synthetic table); None writes nothing
METHOD = "gptq"  # quantizer of the fits: "gptq" (as in the paper), "awq" or "rtn"
BITS = [2, 3, 4]  # weight bit widths fitted (as in the paper)
DESIGNS = ["cosine"]  # schedule designs whose checkpoints enter the fits (the paper: Pythia's cosine runs)
PHASES = ["intermediate", "final"]  # checkpoint phases of the fits: every checkpoint of a cosine run
TRAINED_ONLY = True  # fit only checkpoints whose 16-bit loss beats the bigram baseline (column beats_bigram)
EXTRA_SCATTER = True  # also fit a relative scatter beyond the measured errors (maximum likelihood)
BOOTSTRAP_SAMPLES = 200  # bootstrap replicates (training lineages, and eval windows where available)
CONFIDENCE = 0.95  # coverage of every interval and band (fraction)
SEED = 0  # seed of the bootstrap, the random starts and the synthetic table
VOCAB_SIZE = 1024  # our tokenizer's vocabulary: the uniform-guess bound ln V at our scale
PYTHIA_VOCAB_SIZE = 50_304  # Pythia's vocabulary, for projections to Pythia-sized models
PROJECTION_SIZES = {"1B": 1e9, "7B": 7e9, "70B": 7e10, "405B": 4.05e11}  # model sizes for projections (parameters)
PROJECTION_BITS = [2, 3, 4]  # bit widths of the projections
MAX_TOKENS = 1e14  # right end of the projections (training tokens)

# %% tags=["hide-input"]
from qid.chapters.params import apply_chapter_parameters  # strict types: no 2.5 bits, no true for a count

apply_chapter_parameters("05_fits_on_our_data", globals())
if METHOD not in ("gptq", "awq", "rtn"):
    raise ValueError(f"METHOD must be 'gptq', 'awq' or 'rtn', got {METHOD!r}")
if not BITS or not all(isinstance(bits, int) and 2 <= bits <= 16 for bits in BITS):
    raise ValueError(f"BITS must be a non-empty list of integer bit widths in 2..16, got {BITS}")
if not DESIGNS or not set(DESIGNS) <= {"cosine", "wsd", "measured"}:
    raise ValueError(f"DESIGNS must be a non-empty subset of cosine, wsd (measured: a qid measure table), got {DESIGNS}")
if not PHASES or not set(PHASES) <= {"intermediate", "final", "stable", "decayed"}:
    raise ValueError(f"PHASES must be a non-empty subset of intermediate, final, stable, decayed; got {PHASES}")
if not (isinstance(BOOTSTRAP_SAMPLES, int) and BOOTSTRAP_SAMPLES >= 10):
    raise ValueError(f"BOOTSTRAP_SAMPLES must be an integer >= 10, got {BOOTSTRAP_SAMPLES!r}")
if not 0.5 <= CONFIDENCE < 1:
    raise ValueError(f"CONFIDENCE must be a fraction in [0.5, 1), got {CONFIDENCE}")
if not (VOCAB_SIZE >= 2 and PYTHIA_VOCAB_SIZE >= 2):
    raise ValueError(f"VOCAB_SIZE and PYTHIA_VOCAB_SIZE must be >= 2, got {VOCAB_SIZE}, {PYTHIA_VOCAB_SIZE}")
if not PROJECTION_SIZES or min(PROJECTION_SIZES.values()) <= 0 or not PROJECTION_BITS or not MAX_TOKENS > 1e9:
    raise ValueError("PROJECTION_SIZES must map names to positive sizes, PROJECTION_BITS be non-empty, MAX_TOKENS > 1e9")

SYNTHETIC = QID_TABLE == "synthetic"
if SYNTHETIC:
    raw, window_losses = synthetic_suite_tables(SEED)
else:
    raw = load_table(QID_TABLE)
    raw.attrs["source"] = str(QID_TABLE)
    window_losses = load_table(WINDOW_LOSSES) if WINDOW_LOSSES and Path(WINDOW_LOSSES).is_file() else None
measured, assumptions = suitefits.normalize_measured(raw)
if TRAINED_ONLY and "beats_bigram" in measured.columns:
    # the trained regime (chapter 3): a checkpoint that has not beaten a bigram model has not learned much beyond
    # word statistics; this is a criterion on the 16-bit model, not on the significance of its QiD
    untrained = int((~measured["beats_bigram"].astype(bool)).sum())
    measured = measured[measured["beats_bigram"].astype(bool)].reset_index(drop=True)
    assumptions.append(f"{untrained} rows of checkpoints that do not beat the bigram baseline left out (TRAINED_ONLY)")
# A table without these designs or phases (e.g. a `qid measure` output, all 'measured'/'final') is fitted whole.
designs = DESIGNS if set(DESIGNS) & set(measured["design"]) else sorted(measured["design"].unique())
phases = PHASES if set(PHASES) & set(measured["phase"]) else sorted(measured["phase"].unique())
if (designs, phases) != (DESIGNS, PHASES):
    assumptions.append(f"designs {DESIGNS} / phases {PHASES} absent: all rows used ({designs} / {phases})")
rows, error_summary = suitefits.prepare_rows(measured, METHOD, BITS, designs, phases)
PRESET_NAME = str(measured["preset"].iloc[0]) if "preset" in measured.columns and measured["preset"].nunique() == 1 else "custom"
WRITE_FITS = FITS_DIR is not None and not SYNTHETIC

# %% [markdown]
# ## The measurements
#
# What the table holds, and what enters the fits. The fits use one quantizer, the chosen bit widths, designs
# and phases, with the calibration seeds of a checkpoint averaged into one row; nothing else is removed.

# %% tags=["hide-input"]
if SYNTHETIC:
    display(Markdown("**This run uses the synthetic stand-in table (`qid.suite.synthetic`), not measurements.** "
                     "Its numbers test the chapter, they say nothing about quantization."))
if assumptions:
    display(Markdown("Assumed for this table: " + "; ".join(assumptions) + "."))
inventory = measured.groupby(["design", "phase", "method", "bits"], dropna=False).size().unstack("bits", fill_value=0)
display(inventory)
n_sizes = rows["N"].nunique()
below_two_se = int((rows["qid"] <= 2 * rows["qid_se"]).sum())
negative = int((rows["qid"] < 0).sum())
glue("fit_n_points", len(rows), display=False)
glue("fit_n_sizes", n_sizes, display=False)
glue("fit_rows_below_2se", below_two_se, display=False)
display(Markdown(
    f"The fits use **{len(rows)} rows** ({METHOD}, {', '.join(map(str, BITS))} bits, designs {', '.join(designs)}, "
    f"phases {', '.join(phases)}) from {n_sizes} model sizes and {rows[suitefits.CLUSTER].nunique()} training "
    f"lineages. {below_two_se} of them have QiD within 2 window standard errors of zero and {negative} are "
    "negative; a significance cut would have dropped them, here they stay."
))

# %% [markdown]
# ## The error model
#
# Each row's variance is the sum of three measured components (`qid.fitting.errormodel`): the eval-window standard
# error of its paired loss difference; the variance across calibration seeds (GPTQ and AWQ, from the
# checkpoints measured with seeds 0, 1, 2, pooled per size × bits × method); and the variance across training
# seeds (from cosine runs trained with seeds 0 and 1 at the same size and rung: half the squared difference,
# less the two window variances and the calibration variance, pooled per size × bits). The table gives the
# median standard deviation of each component over the fitted rows, per bit width, in nats.

# %% tags=["hide-input"]
components = rows.assign(window=np.sqrt(rows["var_window"]), calibration=np.sqrt(rows["var_calibration"]),
                         training=np.sqrt(rows["var_training"]))
component_table = components.groupby("bits")[["qid", "window", "calibration", "training", suitefits.TOTAL_ERROR]].median()
component_table = component_table.rename(columns={"qid": "median QiD", suitefits.TOTAL_ERROR: "total"})
display(component_table.style.format("{:.3g}"))
n_pairs = len(error_summary["pairs"])
n_calibration = len(error_summary["calibration_cells"])
sources = rows["training_from"].value_counts().to_dict()
dominant = component_table[["window", "calibration", "training"]].median().idxmax()
glue("error_dominant_component", dominant, display=False)
display(Markdown(
    f"The calibration component rests on {n_calibration} checkpoint cells with repeated calibration seeds; the "
    f"training component on {n_pairs} seed pairs (rows get it from: "
    + ", ".join(f"{source} {count}" for source, count in sources.items())
    + f"). Across bit widths the largest component is typically **{dominant}**: "
    + ("a window standard error alone would overstate the precision of every row." if dominant != "window" else
       "the eval windows limit the precision of a row more than seeds do.")
))

# %% [markdown]
# ## The fits
#
# The unified law $\mathrm{QiD} = k\,D^{\beta}/(N^{\alpha}P^{\gamma})$, Kumar et al.'s
# $\delta_{\mathrm{PTQ}} = C_T\,D^{\gamma_D}N^{-\gamma_N}e^{-P/\gamma_{\mathrm{post}}}$ and one law
# $k_P D^{\beta_P}/N^{\alpha_P}$ per bit width, each fitted to the same rows: least squares on
# (QiD − law) / SE, the Gaussian likelihood with the known variances, plus (with `EXTRA_SCATTER`) a relative
# scatter τ fitted by maximum likelihood for whatever the measured components miss. Exponents may take either
# sign (their bounds are ±3, ±20 for γ). Intervals are bootstrap percentiles: each replicate draws training
# lineages with replacement (design × size × seed: every checkpoint of a run moves together) and, where window
# losses exist, re-measures every QiD on resampled eval windows.

# %%
responses = None
if window_losses is not None:
    responses = window_bootstrap_qid(rows, window_losses, BOOTSTRAP_SAMPLES, SEED)
fits = suitefits.fit_suite_laws(rows, extra_scatter=EXTRA_SCATTER, bootstrap=BOOTSTRAP_SAMPLES, seed=SEED,
                                confidence=CONFIDENCE, responses=responses)
unified, kumar = fits["ouyang_unified"], fits["kumar_ptq"]
display(Markdown(f"Extra relative scatter: {unified.extra_scatter}; bootstrap: "
                 f"{unified.bootstrap['method'] if unified.bootstrap else 'none'}. The fitted values are in the tables below."))

# %% tags=["hide-input"]
problems = []
for label, fit in [("unified", unified), ("Kumar", kumar)] + [(f"{bits}-bit", fit) for bits, fit in fits["ouyang_per_bit"].items()]:
    if not fit.converged:
        problems.append(f"the {label} fit did not converge ({fit.message})")
    problems += [f"the {label} fit is not identified: {reason}" for reason in fit.identification]
display(Markdown("**Fit warnings:** " + "; ".join(problems) + "." if problems else
                 "Every fit converged, and every parameter is identified by the data (no variable constant, no "
                 "parameter at a bound, a full-rank Jacobian)."))
if WRITE_FITS:
    unified.save(f"{FITS_DIR}/{PRESET_NAME}_suite_unified_{METHOD}.json")
    kumar.save(f"{FITS_DIR}/{PRESET_NAME}_suite_kumar_{METHOD}.json")
    for bits, fit in fits["ouyang_per_bit"].items():
        fit.save(f"{FITS_DIR}/{PRESET_NAME}_suite_per_bit_P{bits}_{METHOD}.json")

# %% [markdown]
# Our exponents beside the published ones, with their bootstrap intervals:

# %% tags=["hide-input"]
exponents = suitefits.exponent_table(fits)
for name in ("alpha", "beta", "gamma"):
    row = exponents[(exponents["law"] == "Ouyang unified") & (exponents["parameter"] == name)].iloc[0]
    glue(f"unified_{name}", float(row["value"]), display=False)
    glue(f"unified_{name}_low", float(row["low"]), display=False)
    glue(f"unified_{name}_high", float(row["high"]), display=False)
exponents.style.format({"value": "{:.4g}", "low": "{:.4g}", "high": "{:.4g}", "published": "{:.4g}"})

# %% [markdown]
# ### α from four sizes
#
# α is the exponent of model size, and the suite has only a handful of sizes: its uncertainty is that of a
# slope through that many points. Holding β and γ at the fitted values, each size gets its own prefactor
# $k_N$; −α is the slope of $\log k_N$ on $\log N$, with a *t* interval on $n - 2$ degrees of freedom.

# %% tags=["hide-input"]
prefactors = suitefits.size_prefactors(rows, unified)
slope = suitefits.few_point_slope(prefactors["log_N"], prefactors["log_k"], CONFIDENCE)
glue("alpha_slope", float(-slope["slope"]), display=False)
glue("alpha_slope_low", float(-slope["high"]), display=False)
glue("alpha_slope_high", float(-slope["low"]), display=False)
display(Markdown(
    f"From {len(prefactors)} sizes: α = {-slope['slope']:.3f}, {CONFIDENCE:.0%} interval "
    f"[{-slope['high']:.3f}, {-slope['low']:.3f}] (t quantile {slope.get('t_quantile', math.nan):.2f} on "
    f"{slope['dof']} degrees of freedom), against the unified fit's bootstrap interval "
    f"[{unified.intervals['alpha'][0]:.3f}, {unified.intervals['alpha'][1]:.3f}]." if unified.intervals else
    f"From {len(prefactors)} sizes: α = {-slope['slope']:.3f} (no bootstrap interval to compare)."
))

# %% [markdown]
# ## Residuals
#
# Standardized residuals (measured − fitted, in total standard errors) of the unified law against training
# tokens, one colour per bit width. Without structure they scatter around zero within about ±2.

# %% tags=["hide-input"]
standardized = (rows["qid"] - unified.predict(N=rows["N"].to_numpy(), D=rows["D"].to_numpy(), P=rows["P"].to_numpy())) / rows[suitefits.TOTAL_ERROR]
fig, ax = subplots()
for bits, group in rows.groupby("bits"):
    ax.scatter(group["D"], standardized[group.index], s=12, color=bit_color(bits), label=f"{bits} bits")
ax.axhline(0, color="0.3", lw=0.8)
for level in (-2, 2):
    ax.axhline(level, color="0.6", lw=0.6, ls="--")
log_axes(ax, y=False)
ax.set_xlabel("training tokens D")
ax.set_ylabel("standardized residual (total SE)")
ax.legend(fontsize=8)
glue("unified_residual_rms", float(np.sqrt(np.mean(standardized**2))), display=False)

# %% [markdown]
# ## Which law describes the data best
#
# AIC, AICc (small-sample corrected) and BIC from each law's likelihood on the same rows; the per-bit laws'
# likelihoods are summed over bit widths and their parameters counted together. Then one common hold-out:
# every row of the largest size and each other size's largest D/N rung is held out, each law is refitted on
# the rest, and all are scored on the same held-out rows (RMS error in total standard errors, and in nats).

# %% tags=["hide-input"]
comparison = suitefits.compare_laws(fits)
glue("best_law_aicc", comparison["law"].iloc[0], display=False)
glue("best_law_aic", comparison.sort_values("AIC")["law"].iloc[0], display=False)
display(comparison.style.format({"log_likelihood": "{:.2f}", "AIC": "{:.2f}", "AICc": "{:.2f}", "BIC": "{:.2f}", "ΔAICc": "{:.2f}"}))

# %% tags=["hide-input"]
held_out = suitefits.common_holdout(rows)
holdout = suitefits.holdout_scores(rows, held_out, EXTRA_SCATTER, SEED)
glue("best_law_holdout", holdout["law"].iloc[0], display=False)
display(holdout.rename(columns={"n_train": "rows fitted", "n_test": "rows held out", "rms_standardized": "RMS (SE)",
                                 "rms_nats": "RMS (nats)", "mean_error_nats": "mean error (nats)"})
        .style.hide(axis="index").format({"RMS (SE)": "{:.3g}", "RMS (nats)": "{:.3g}", "mean error (nats)": "{:.3g}"}))
display(Markdown(
    f"By AICc the best law is **{comparison['law'].iloc[0]}** (next: {comparison['law'].iloc[1]}, "
    f"ΔAICc = {comparison['ΔAICc'].iloc[1]:.1f}); on the common hold-out ({int(held_out.sum())} rows) the best is "
    f"**{holdout['law'].iloc[0]}** (RMS {holdout['rms_standardized'].iloc[0]:.2f} SE)."
))

# %% [markdown]
# ## Projections that know their limits
#
# ### At our scale
#
# The unified law with its bootstrap band for every size of the suite, over a decade beyond the data on
# either side; the grey span is where we have measurements. Our 16-bit loss law (Chinchilla's form, fitted to
# the finished checkpoints: the WSD decay branches, one per rung, and the cosine runs' ends) gives the ceiling $\ln V - \mathrm{Loss}_{16}$ above which the
# quantized model would be worse than a uniform guess over our vocabulary (`VOCAB_SIZE` tokens); curves are
# capped there and the cap is marked (×). At token counts where the 16-bit law itself is above $\ln V$ (too little
# training to beat a uniform guess) the bound says nothing about QiD, and the curves are not drawn.

# %% tags=["hide-input"]
chinchilla = get_law("chinchilla")
try:
    loss_law = suitefits.loss16_fit(measured)
except DataError as error:  # too few finished checkpoints for the 16-bit law: no ceiling at our scale
    loss_law = None
    display(Markdown(f"Our 16-bit loss law could not be fitted ({error}); the curves below are not capped."))
tokens_low, tokens_high = rows["D"].min(), rows["D"].max()
grid = np.logspace(math.log10(tokens_low) - 1, math.log10(tokens_high) + 1, 120)
fig, axes = subplots(1, len(BITS), figsize=(4.0 * len(BITS), 3.8), sharey=True)
capped_anywhere = False
for ax, bits in zip(np.atleast_1d(axes), BITS):
    for N in sorted(rows["N"].unique()):
        central = unified.predict(N=N, D=grid, P=bits)
        if loss_law is not None:
            loss16 = chinchilla(loss_law.params, N=N, D=grid)
            shown, flagged = capped_qid(loss16, central, VOCAB_SIZE)
            # Where the 16-bit law itself is above ln V (too few tokens to beat a uniform guess) the bound says
            # nothing about QiD: those token counts are left out of the curve.
            shown = np.where(loss16 < uniform_guess_loss(VOCAB_SIZE), shown, np.nan)
            flagged &= loss16 < uniform_guess_loss(VOCAB_SIZE)
        else:
            shown, flagged = central, np.zeros(len(grid), dtype=bool)
        capped_anywhere |= bool(flagged.any())
        line, = ax.plot(grid, shown, lw=1.2, label=f"N = {N:,.0f}")
        if unified.bootstrap_samples():
            low, high = unified.prediction_interval(N=N, D=grid, P=bits)
            if loss_law is not None:  # the band is capped at the same ceiling as the curve
                low, high = (np.where(np.isfinite(shown), capped_qid(loss16, edge, VOCAB_SIZE)[0], np.nan) for edge in (low, high))
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.15, lw=0)
        if flagged.any():
            ax.plot(grid[flagged], shown[flagged], "x", ms=3, color=line.get_color())
        measured_here = rows[(rows["N"] == N) & (rows["bits"] == bits)]
        ax.scatter(measured_here["D"], measured_here["qid"].clip(lower=1e-5), s=8, color=line.get_color())
    ax.axvspan(tokens_low, tokens_high, color="0.9", zorder=0)
    log_axes(ax)
    ax.set_xlabel("training tokens D")
    ax.set_title(f"{bits} bits", fontsize=10)
np.atleast_1d(axes)[0].set_ylabel("QiD (nats per token)")
np.atleast_1d(axes)[-1].legend(fontsize=7)
ceiling_note = ("Some curves reach the worse-than-uniform ceiling (marked ×) inside the plotted range." if capped_anywhere
                else "No curve reaches the worse-than-uniform ceiling in the plotted range." if loss_law is not None
                else "Without a 16-bit loss law the ceiling is not drawn.")
display(Markdown(ceiling_note
                 + " Measured points below 1e-5 nats (zero or negative QiD) are drawn at 1e-5."))

# %% [markdown]
# ### Critical data size
#
# Past some number of training tokens, more data makes the *quantized* model worse: Loss$_{16}$ falls ever
# more slowly while QiD keeps growing. The critical data size is where their sum is lowest. From the published
# laws (Ouyang et al.'s unified law with the 16-bit loss law they fitted on Pythia; Kumar et al.'s
# δ$_{\mathrm{PTQ}}$ with their base law, in both readings of their offset $b$) and from ours (our unified QiD
# law with the Pythia loss law, so that only the QiD law differs), for model sizes of 1B–405B:

# %% tags=["hide-input"]
pythia_loss = get_law("pythia_loss16")
pythia_params = pythia_loss.parameter_sets["published"].values
ouyang = get_law("ouyang_unified")
kumar_law = get_law("kumar_ptq")
kumar_base = chinchilla.parameter_sets["kumar_base"].values
models = {
    "Ouyang (published) + Pythia loss": (lambda N, D: pythia_loss(pythia_params, N=N, D=D),
                                         lambda N, D, P: ouyang(ouyang.parameter_sets["published"].values, N=N, D=D, P=P)),
    "Kumar (b left out) + Kumar base": (lambda N, D: chinchilla(kumar_base, N=N, D=D),
                                        lambda N, D, P: kumar_law(kumar_law.parameter_sets["published"].values, N=N, D=D, P=P)),
    "Kumar (× e^b) + Kumar base": (lambda N, D: chinchilla(kumar_base, N=N, D=D),
                                   lambda N, D, P: kumar_law(kumar_law.parameter_sets["published_with_offset"].values, N=N, D=D, P=P)),
    "ours (unified) + Pythia loss": (lambda N, D: pythia_loss(pythia_params, N=N, D=D),
                                     lambda N, D, P: unified.predict(N=N, D=D, P=P)),
}
critical = critical_data_table(models, PROJECTION_SIZES, PROJECTION_BITS)
critical_wide = critical.pivot_table(index=["size", "bits"], columns="model", values="D_star", sort=False)
display(critical_wide.style.format("{:.3g}"))

fig, axes = subplots(1, len(PROJECTION_BITS), figsize=(4.0 * len(PROJECTION_BITS), 3.8), sharey=True)
styles = dict(zip(models, ["-", ":", "-.", "--"]))
for ax, bits in zip(np.atleast_1d(axes), PROJECTION_BITS):
    for label, group in critical[critical["bits"] == bits].groupby("model", sort=False):
        ax.plot(group["N"], group["D_star"], ls=styles[label], marker="o", ms=3, color=bit_color(bits), label=label)
    log_axes(ax)
    ax.set_xlabel("model size N (parameters)")
    ax.set_title(f"{bits} bits", fontsize=10)
np.atleast_1d(axes)[0].set_ylabel("critical data size D* (tokens)")
np.atleast_1d(axes)[0].legend(fontsize=7)
ours_7b_4 = critical[(critical["model"] == "ours (unified) + Pythia loss") & (critical["size"] == "7B") & (critical["bits"] == 4)]
if len(ours_7b_4):
    glue("ours_critical_7b_4bit", float(ours_7b_4["D_star"].iloc[0]), display=False)

# %% [markdown]
# At our own scale the same question has a measured answer: for each size and bit width, the training tokens
# where our 16-bit loss law plus our QiD law is lowest, against the finished checkpoint (a WSD decay branch:
# a run whose learning rate has decayed at that D) where the measured Loss$_{16}$ + QiD is lowest. The QiD law
# was fitted on cosine checkpoints, the measured minimum comes from WSD branches: a schedule difference the
# schedule chapter examines.

# %% tags=["hide-input"]
own_rows = []
loss_params = loss_law.params if loss_law is not None else None
finals = suitefits.finished_checkpoints(measured, (("wsd", "decayed"),))
finals = finals[(finals["method"] == METHOD) & (finals["train_seed"] == 0)]
for N in sorted(rows["N"].unique()) if loss_params is not None else []:
    for bits in BITS:
        tokens, lowest = critical_data_size(lambda D, N=N: chinchilla(loss_params, N=N, D=D),
                                            lambda D, N=N, bits=bits: unified.predict(N=N, D=D, P=bits), 1e3, 1e14)
        cells = finals[(finals["N"] == N) & (finals["bits"] == bits)].groupby("tokens")[["loss_16", "qid"]].mean()
        best_measured = float((cells["loss_16"] + cells["qid"]).idxmin()) if len(cells) else math.nan
        own_rows.append({"N": N, "bits": bits, "D* from our laws": tokens, "lowest measured checkpoint": best_measured,
                         "largest measured": float(cells.index.max()) if len(cells) else math.nan})
own_critical = pd.DataFrame(own_rows, columns=["N", "bits", "D* from our laws", "lowest measured checkpoint", "largest measured"])
display(own_critical.style.format({"N": "{:,.0f}", "D* from our laws": "{:.3g}", "lowest measured checkpoint": "{:.3g}",
                                   "largest measured": "{:.3g}"}))
interior = own_critical[own_critical["lowest measured checkpoint"] < own_critical["largest measured"]]
glue("measured_interior_minima", len(interior), display=False)
if len(own_critical):
    factor = np.exp(np.abs(np.log(interior["D* from our laws"] / interior["lowest measured checkpoint"]))).max() if len(interior) else math.nan
    display(Markdown(
        f"{len(interior)} of {len(own_critical)} size × bit-width combinations reach their lowest measured "
        "Loss$_{16}$ + QiD before the end of the ladder — past it, more training made the quantized model worse"
        + (f" (bit widths {', '.join(map(str, sorted(interior['bits'].unique())))}); there our laws' D* lies within a "
           f"factor {factor:.1f} of the measured minimum (the ladder's rungs are a factor 2 apart)." if len(interior) else ".")
        + " Elsewhere the measured sum still falls at the largest D, and D* from our laws lies beyond the data."
    ))

# %% [markdown]
# ### Figure 1 of the paper from our fit
#
# QiD of Pythia-sized models after `MAX_TOKENS` training tokens from our unified law, with its bootstrap
# interval, beside the published law. These extrapolate over four to six decades in N and D; any value past the
# worse-than-uniform bound (Pythia's loss law plus QiD above $\ln$ of Pythia's vocabulary) is capped at the
# bound and flagged: such a number only says the law has left its range.

# %% tags=["hide-input"]
projection_rows = []
for size, N in PROJECTION_SIZES.items():
    loss16_at_max = float(pythia_loss(pythia_params, N=N, D=MAX_TOKENS))
    for bits in PROJECTION_BITS:
        ours = float(unified.predict(N=N, D=MAX_TOKENS, P=bits))
        low, high = (unified.prediction_interval(N=N, D=MAX_TOKENS, P=bits) if unified.bootstrap_samples() else (math.nan, math.nan))
        published_value = float(ouyang(ouyang.parameter_sets["published"].values, N=N, D=MAX_TOKENS, P=bits))
        ours_capped, ours_flag = capped_qid(loss16_at_max, ours, PYTHIA_VOCAB_SIZE)
        published_capped, published_flag = capped_qid(loss16_at_max, published_value, PYTHIA_VOCAB_SIZE)
        projection_rows.append({"size": size, "bits": bits, "ours (capped)": float(ours_capped),
                                "ours low": float(min(low, ours_capped)), "ours high": float(min(high, ours_capped)),
                                "ours past ln V": bool(ours_flag), "published (capped)": float(published_capped),
                                "published past ln V": bool(published_flag)})
projection = pd.DataFrame(projection_rows)
glue("projection_flagged", int(projection["ours past ln V"].sum() + projection["published past ln V"].sum()), display=False)
glue("projection_max_printed", float(projection[["ours (capped)", "published (capped)"]].max().max()), display=False)
display(projection.style.format({"ours (capped)": "{:.3g}", "ours low": "{:.3g}", "ours high": "{:.3g}", "published (capped)": "{:.3g}"}))
display(Markdown(
    f"The largest QiD printed is {projection[['ours (capped)', 'published (capped)']].max().max():.3g} nats (the cap: "
    f"$\\ln {PYTHIA_VOCAB_SIZE:,} = {uniform_guess_loss(PYTHIA_VOCAB_SIZE):.2f}$ nats minus the 16-bit loss); "
    f"{int(projection['ours past ln V'].sum())} of our and {int(projection['published past ln V'].sum())} of the "
    f"published projections are past the bound and flagged."
))

# %% [markdown]
# ## Summary

# %% tags=["hide-input"]
gap = scale_gap(measured)
glue("scale_gap_N_factor", float(gap["N_factor"]), display=False)
published_unified = ouyang.parameter_sets["published"].values


def interval(name: str) -> str:
    value = unified.params[name]
    bounds = (unified.intervals or {}).get(name)
    return f"{value:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else f"{value:.3f}"


display(Markdown(
    ("- **Synthetic table: these numbers test the chapter, they are not measurements.**\n" if SYNTHETIC else "")
    + f"- {len(rows)} rows from {n_sizes} sizes, every one kept ({below_two_se} within 2 SE of zero); each weighted by "
    f"its total standard error (windows + calibration seed + training seed; largest component: {dominant}).\n"
    f"- Unified law: α = {interval('alpha')}, β = {interval('beta')}, γ = {interval('gamma')} "
    f"({CONFIDENCE:.0%} lineage{'+window' if responses is not None else ''} bootstrap), against the published "
    f"α = {published_unified['alpha']}, β = {published_unified['beta']}, γ = {published_unified['gamma']}. "
    f"α from {len(prefactors)} sizes with a t interval: {-slope['slope']:.3f} [{-slope['high']:.3f}, {-slope['low']:.3f}].\n"
    f"- Best law by AICc on common rows: {comparison['law'].iloc[0]}; best on the common hold-out: {holdout['law'].iloc[0]}, "
    f"missing the held-out rows by {holdout['rms_standardized'].iloc[0]:.1f} standard errors RMS "
    f"({holdout['rms_nats'].iloc[0]:.3g} nats).\n"
    + (f"- {len(interior)} of {len(own_critical)} size × bit-width combinations have a measured critical data size inside "
       "the ladder.\n" if len(own_critical) else "")
    +
    f"- Projections are capped at the worse-than-uniform bound and flagged ({int(projection['ours past ln V'].sum())} "
    "of ours at the projection points); the critical data size table compares the published laws and ours.\n"
    f"- Pythia's largest model is {gap['N_factor']:,.0f}× our largest: every projection to it is an extrapolation."
))

# %% [markdown]
# ## What's next
#
# The schedule chapter asks whether QiD's growth with tokens follows the learning-rate schedule rather than
# the token count (the WSD checkpoints of the suite).
#
# ## References
#
# {cite:t}`ouyang2024lowbit`, {cite:t}`kumar2024precision`, {cite:t}`hoffmann2022chinchilla`,
# {cite:t}`newville2014lmfit`. Full entries are in the bibliography.
