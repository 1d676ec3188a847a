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
# # Validating the fitter: recovery, coverage and the Chinchilla refit
#
# ## Overview
#
# Every law in this book is fitted by one function, `qid.fitting.fit.fit_law`, built on lmfit
# {cite:p}`newville2014lmfit`. Before trusting it with QiD measurements we check it where the right answer is
# known:
#
# 1. **Recovery.** Data drawn from the unified QiD law of {cite:t}`ouyang2024lowbit` with known parameters and
#    multiplicative noise is fitted back; we compare the estimates and their intervals with the truth.
# 2. **Coverage.** Over many such data sets, do the 95 % intervals (lmfit's standard errors and a seeded
#    {term}`bootstrap <Bootstrap interval>`) contain the true parameters about 95 % of the time?
# 3. **A published fit from published data.** {cite:t}`besiroglu2024chinchilla` extracted the 245 points of
#    Figure 4 of {cite:t}`hoffmann2022chinchilla` and refitted the Chinchilla law with Hoffmann et al.'s own
#    procedure. The same procedure run through our generic fitter must give their numbers, and fast.
#
# ## Prerequisites
#
# - No earlier chapter; no model, no GPU.
# - For section 3: Epoch AI's 245 points extracted from Hoffmann et al.'s Figure 4, published with
#   {cite:t}`besiroglu2024chinchilla` as `data/svg_extracted_data.csv` in the repository
#   `github.com/epoch-research/analyzing-chinchilla`. The book does not redistribute this third-party file: it
#   reads `../shared/reference/chinchilla_svg_extracted_data.csv` beside the repository, or the path given
#   as `CHINCHILLA_CSV` (`-p CHINCHILLA_CSV path/to/svg_extracted_data.csv`). Where neither exists, section 3
#   says so and is skipped; sections 1 and 2 need no data.

# %% [markdown]
# ## Imports

# %% tags=["hide-input"]
import os
import time

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from myst_nb import glue

from qid.fitting.fit import (
    EPOCH_BOOTSTRAP_STDERR,
    EPOCH_CHINCHILLA_FILE,
    HOFFMANN_OPTIONS,
    HOFFMANN_PROCEDURE_ON_EPOCH_DATA,
    START_GRIDS,
    coverage_experiment,
    extrapolation_error,
    fit_law,
    load_epoch_chinchilla,
    objective_value,
    synthetic_table,
)
from qid.chapters.formatting import format_number, format_percent, page_table
from qid.chapters.tables import fit_table
from qid.chapters.params import apply_chapter_parameters
from qid.laws.registry import get_law
from qid.common.paths import SHARED_REFERENCE_DIR
from qid.chapters.plots import log_axes, subplots

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
CHINCHILLA_CSV = None  # path of the Epoch AI extracted points, or None for the shared reference folder beside the repo
DROP_LARGEST_LOSSES = 5  # outlier rule of Epoch AI: the points with the largest losses are dropped (count)
HUBER_DELTA = 1e-3  # Huber threshold on log-loss residuals (the value of Hoffmann et al.)
SCREEN_STARTS = None  # run L-BFGS only from this many best grid points, or None for all 4500 (the Hoffmann procedure)
BOOTSTRAP_SAMPLES = 200  # bootstrap replicates for the Chinchilla intervals (count)
HOLDOUT_TOP = 3  # largest distinct model sizes (and token counts) held out for the extrapolation check (count)
NOISE_SIGMA = 0.1  # standard deviation of the multiplicative log-normal noise on synthetic QiD (log units)
COVERAGE_REPETITIONS = 100  # synthetic data sets in the coverage experiment (count)
COVERAGE_BOOTSTRAP = 100  # bootstrap replicates per synthetic data set (count)
CONFIDENCE = 0.95  # nominal coverage of every interval (fraction)
SEED = 0  # seed of the synthetic data, random starts and bootstraps
# Synthetic data: every combination of model size N (parameters), training tokens D and bit width P (5x3x3 = 45)
SYNTHETIC_DESIGN = {"N": [1e8, 4e8, 1e9, 3e9, 1e10], "D": [1e9, 1e10, 1e11], "P": [2, 3, 4]}

# %% tags=["remove-cell"]
apply_chapter_parameters("04_fitter_validation", globals())  # coerce papermill's text and check every value

# %% tags=["hide-input"]
unified = get_law("ouyang_unified")
truth = dict(unified.parameter_sets["published"].values)

# %% [markdown]
# ## How a fit runs
#
# A law is a plain function with named parameters; its bounds are data in the registry. `fit_law` builds
# lmfit `Parameters` from it and then:
#
# - **searches** from every point of a start grid (or from $N$ seeded random starts) with L-BFGS-B on a
#   vectorised numpy objective whose gradient is exact (analytic for the built-in laws, complex-step
#   differentiation for a reader's own law); the 20 best end points are refined to tight tolerances;
# - **polishes** the best with lmfit's `Minimizer` (trust-region least squares with the same loss), which
#   gives the report below; a polish that does not converge makes the fit *failed*, never silently returned;
# - minimises either the sum of squared residuals or the **sum** of Huber$_\delta$ of the residuals, in log
#   space ($r = \log y - \log \hat y$) by default;
# - searches positive scale parameters ($k$, $A$, $B$, $E$) as their logarithms, so the Chinchilla grid over
#   $(\log A, \log B, \log E, \alpha, \beta)$ is exactly Hoffmann et al.'s.
#
# ## 1. Recovery: synthetic QiD fitted back
#
# We draw QiD from the unified law with the published parameters as the truth, multiply each value by
# $e^{\sigma\varepsilon}$ with $\varepsilon \sim \mathcal{N}(0, 1)$, and fit by least squares on log QiD.

# %%
synthetic = synthetic_table(unified, truth, SYNTHETIC_DESIGN, noise=NOISE_SIGMA, seed=SEED)
recovery = fit_law(unified, synthetic, bootstrap=BOOTSTRAP_SAMPLES, seed=SEED, confidence=CONFIDENCE)

# %% tags=["hide-input"]
recovery_table = fit_table(recovery, published=truth, published_label="truth")
recovery_table["lmfit stderr"] = pd.Series(recovery.stderr)
recovery_table["(value − truth) / stderr"] = (recovery_table["value"] - recovery_table["truth"]) / recovery_table["lmfit stderr"]
recovery_worst_z = float(recovery_table["(value − truth) / stderr"].abs().max())
glue("recovery_worst_z", recovery_worst_z, display=False)
page_table(recovery_table.drop(columns="interval"), se_columns={"value": "stderr"},
           formats={"(value − truth) / stderr": lambda z: format_number(z, digits=2)},
           rename={"stderr": "bootstrap se", "lmfit stderr": "lmfit se", "(value − truth) / stderr": "miss / lmfit se"})

# %% [markdown]
# *The recovery fit: estimate, bootstrap standard error and 95 % bootstrap percentile interval (`low`, `high`),
# the true value, lmfit's covariance standard error, and the miss (value − truth) in units of that standard
# error.*
#
# The estimates land within a few standard errors of the truth, and the two uncertainty estimates agree. One
# data set proves little, though: the next section repeats the draw many times.
#
# ## 2. Coverage of the intervals
#
# For each of many synthetic data sets we record whether two intervals contain the true parameter: the Wald
# interval $\hat\theta \pm z\,\mathrm{se}$ from lmfit's covariance (taken on $\log k$ for the prefactor, which is
# searched in logs), and the bootstrap percentile interval (points resampled with replacement, each replicate
# refitted from the full-data optimum).

# %%
started = time.perf_counter()
coverage = coverage_experiment(unified, truth, SYNTHETIC_DESIGN, noise=NOISE_SIGMA, repetitions=COVERAGE_REPETITIONS,
                               bootstrap=COVERAGE_BOOTSTRAP, seed=SEED, confidence=CONFIDENCE, starts=1)
coverage_seconds = time.perf_counter() - started
if not coverage["converged"].all():
    raise RuntimeError(f"{int((~coverage['converged']).sum())} coverage fits did not converge")

# %% tags=["hide-input"]
rates = coverage.groupby("parameter", sort=False)[["wald_covers", "bootstrap_covers"]].mean()
rates = rates.rename(columns={"wald_covers": "lmfit (Wald)", "bootstrap_covers": "bootstrap percentile"})
rates.loc["all parameters"] = [coverage["wald_covers"].mean(), coverage["bootstrap_covers"].mean()]
binomial_se = float(np.sqrt(CONFIDENCE * (1 - CONFIDENCE) / COVERAGE_REPETITIONS))
coverage_wald = float(rates.loc["all parameters", "lmfit (Wald)"])
coverage_bootstrap = float(rates.loc["all parameters", "bootstrap percentile"])
glue("coverage_wald", coverage_wald, display=False)
glue("coverage_bootstrap", coverage_bootstrap, display=False)
display(Markdown(
    f"Coverage over {COVERAGE_REPETITIONS} data sets ({coverage_seconds:.0f} s); nominal {CONFIDENCE:.0%}, binomial "
    f"standard error of one parameter's rate ±{binomial_se:.1%}:"
))
page_table(rates.rename_axis("parameter"), formats={column: format_percent for column in rates.columns})

# %% [markdown]
# Rates within about two binomial standard errors of the nominal value are what a correct interval gives. The
# percentile bootstrap tends to run slightly below nominal with few points per parameter (here 45 for 4):
# resampling reproduces the scatter of the residuals but not the $n/(n-k)$ correction that the Wald interval
# carries through the reduced $\chi^2$.

# %% tags=["hide-input"]
fig, ax = subplots()
beta_rows = coverage[coverage["parameter"] == "beta"].sort_values("estimate").reset_index(drop=True)
for index, row in beta_rows.iterrows():
    color = "#2980b9" if row["bootstrap_covers"] else "#c0392b"
    ax.plot([row["bootstrap_low"], row["bootstrap_high"]], [index, index], color=color, lw=1.2)
    ax.plot(row["estimate"], index, "o", color=color, ms=2.5)
ax.axvline(truth["beta"], color="k", lw=1, ls="--", label=f"truth β = {truth['beta']}")
ax.set_xlabel("β (exponent of training tokens D)")
ax.set_ylabel("synthetic data set (sorted by estimate)")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# Each line is one data set's bootstrap interval for $\beta$, red where it misses the true value (dashed line).
# About one in twenty should miss.
#
# ## 3. The Chinchilla law from Epoch AI's extracted points
#
# {cite:t}`hoffmann2022chinchilla` fit $L(N, D) = E + A/N^{\alpha} + B/D^{\beta}$ by minimising the **sum** of
# Huber$_\delta$ ($\delta = 10^{-3}$) of $\log L - \mathrm{LSE}(a - \alpha \log N,\, b - \beta \log D,\, e)$ with
# L-BFGS from a grid of starts, $A = e^a$, $B = e^b$, $E = e^e$. {cite:t}`besiroglu2024chinchilla` rebuilt
# their data from Figure 4 (training FLOP $C$ per point, $D = C / 6N$), dropped the 5 largest losses, and ran
# that procedure on the remaining 240 points. Our call is the generic one:
# `fit_law("chinchilla", points, loss="huber", delta=1e-3, space="log", starts="grid")`, the same as
# `qid fit --law chinchilla --loss huber --delta 1e-3 --space log --starts grid`. The only difference from
# Hoffmann et al.'s setup is that $\alpha, \beta$ are bounded to $[0, 3]$ (registry defaults), which does not bind.

# %% tags=["hide-input"]
chinchilla_path = CHINCHILLA_CSV or SHARED_REFERENCE_DIR / EPOCH_CHINCHILLA_FILE
try:
    points = load_epoch_chinchilla(chinchilla_path, drop_largest_losses=DROP_LARGEST_LOSSES)
    chinchilla_available = True
except FileNotFoundError:
    points, chinchilla_available = None, False
glue("chinchilla_available", chinchilla_available, display=False)
if not chinchilla_available:
    display(Markdown(
        f"**Skipped:** Epoch AI's extracted points are not on this machine (looked for `{os.path.relpath(chinchilla_path)}`). "
        "They are third-party data that the book does not redistribute: download `data/svg_extracted_data.csv` "
        "from `github.com/epoch-research/analyzing-chinchilla` and pass its path as `CHINCHILLA_CSV` to "
        "reproduce the Chinchilla refit."
    ))

# %%
if chinchilla_available:
    grid_size = int(np.prod([len(values) for values in START_GRIDS["chinchilla"].values()]))
    options = {**HOFFMANN_OPTIONS, "delta": HUBER_DELTA}
    started = time.perf_counter()
    chinchilla = fit_law("chinchilla", points, **options, screen=SCREEN_STARTS, bootstrap=0)
    chinchilla_seconds = time.perf_counter() - started

# %% tags=["hide-input"]
if chinchilla_available:
    display(Markdown(
        f"{len(points)} points; L-BFGS from {chinchilla.starts['n_run']} of the {grid_size} grid starts, "
        f"search and polish in **{chinchilla_seconds:.1f} s** on this machine "
        f"(Epoch report about 8 minutes for their run). "
        f"{chinchilla.starts['n_reaching_best']} starts ended (at default tolerances) within $10^{{-6}}$ of the best objective."
    ))
    glue("chinchilla_seconds", chinchilla_seconds, display=False)
    glue("chinchilla_starts_run", int(chinchilla.starts["n_run"]), display=False)

# %% [markdown]
# lmfit gives no standard errors here, on purpose: with $\delta = 10^{-3}$ nearly every residual lies in the
# linear part of the Huber function, so the curvature that a covariance estimate needs comes from a handful of
# points. The bootstrap below replaces it, as in Epoch's analysis.

# %%
if chinchilla_available:
    # The same fit restarted from its optimum, now with a bootstrap (each replicate restarts from there too).
    started = time.perf_counter()
    chinchilla_boot = fit_law("chinchilla", points, **{**options, "starts": [chinchilla.params]},
                              bootstrap=BOOTSTRAP_SAMPLES, seed=SEED, confidence=CONFIDENCE)
    bootstrap_seconds = time.perf_counter() - started

# %% tags=["hide-input"]
if chinchilla_available:
    chinchilla_law = get_law("chinchilla")
    hoffmann_published = chinchilla_law.parameter_sets["published"].values
    epoch_refit = chinchilla_law.parameter_sets["epoch_refit"].values
    target = HOFFMANN_PROCEDURE_ON_EPOCH_DATA
    problem_inputs = {"N": points["N"].to_numpy(), "D": points["D"].to_numpy()}

    def huber_sum(params):
        residuals = np.log(points["loss"].to_numpy()) - np.log(chinchilla_law(params, **problem_inputs))
        return objective_value(residuals, "huber", HUBER_DELTA)

    names = list(chinchilla_law.parameters)
    comparison = pd.DataFrame({
        "this book": {**chinchilla.params, "Huber sum": chinchilla.objective},
        "Epoch, same procedure": {**{name: target[name] for name in names}, "Huber sum": target["huber_sum"]},
        "Epoch refit": {**epoch_refit, "Huber sum": huber_sum(epoch_refit)},
        "Hoffmann et al.": {**hoffmann_published, "Huber sum": huber_sum(hoffmann_published)},
    })
    comparison["difference"] = comparison["this book"] / comparison["Epoch, same procedure"] - 1
    five_digits = lambda value: format_number(value, digits=5)
    display(page_table(comparison.rename_axis("parameter"),
                       formats={**{column: five_digits for column in comparison.columns},
                                "difference": lambda value: f"{100 * value:+.3f}%"}))
    relative = (comparison["difference"]).abs()
    for name in ("A", "B", "E", "alpha", "beta"):
        glue(f"chinchilla_{name}", float(chinchilla.params[name]), display=False)
        glue(f"chinchilla_{name}_relative_error", float(relative[name]), display=False)
    glue("chinchilla_objective", float(chinchilla.objective), display=False)

# %% [markdown]
# *Our fit ("this book"), Hoffmann et al.'s procedure run by Epoch on the same points ("Epoch, same procedure"),
# Epoch's published refit, and Hoffmann et al.'s published values; "difference" is this book relative to
# Epoch's run of the same procedure.* The Huber sums of the
# published parameter sets, evaluated on the same 240 points, show how much worse Hoffmann et al.'s printed
# fit is on these data (the point of Epoch's paper). $B$ is poorly determined: the objective is flat along it.
#
# ### Uncertainty: our bootstrap against Epoch's

# %% tags=["hide-input"]
if chinchilla_available:
    uncertainty = fit_table(chinchilla_boot, published=EPOCH_BOOTSTRAP_STDERR, published_label="Epoch stderr")
    display(Markdown(
        f"{chinchilla_boot.bootstrap['n_converged']} of {BOOTSTRAP_SAMPLES} bootstrap replicates converged "
        f"(seed {SEED}; {bootstrap_seconds:.1f} s):"
    ))
    display(page_table(uncertainty, se_columns={"value": "stderr"}))

# %% [markdown]
# ### Residuals and extrapolation
#
# The residuals in log space against model size, coloured by training tokens: a good fit leaves no trend.
# Then the fit is repeated with the largest model sizes (or token counts) held out, and its prediction for
# those points compared with their losses.

# %% tags=["hide-input"]
if chinchilla_available:
    fig, ax = subplots()
    residuals = chinchilla.residuals
    scatter = ax.scatter(points["N"], residuals, c=np.log10(points["D"]), cmap="viridis", s=14)
    ax.axhline(0, color="k", lw=0.8)
    for sign in (-1, 1):
        ax.axhline(sign * HUBER_DELTA, color="#c0392b", lw=0.8, ls=":")
    log_axes(ax, y=False)
    ax.set_xlabel("model size N (parameters)")
    ax.set_ylabel("residual log L − log L̂ (log nats)")
    fig.colorbar(scatter, ax=ax, label="log10 training tokens D")
    plt.show()

# %% [markdown]
# *Residuals of the Chinchilla fit in log space against model size, coloured by training tokens. The dotted
# lines mark $\pm\delta$: only the points between them contribute quadratically to the objective.*

# %%
if chinchilla_available:
    # Each hold-out refit runs the same search (grid, screening) as the main fit, on the remaining points.
    extrapolation = pd.DataFrame({
        variable: extrapolation_error("chinchilla", points, variable, top=HOLDOUT_TOP, **options, screen=SCREEN_STARTS)
        for variable in ("N", "D")
    }).T[
        ["held_out_from", "n_train", "n_test", "rms_log_error", "mean_relative_error", "max_abs_relative_error"]
    ]
    display(page_table(extrapolation.rename_axis("held out"), formats={
        "mean_relative_error": lambda value: f"{100 * value:+.2f}%", "max_abs_relative_error": format_percent},
        rename={"held_out_from": "held out from", "n_train": "train points", "n_test": "test points",
                "rms_log_error": "RMS log error", "mean_relative_error": "mean rel. error",
                "max_abs_relative_error": "max |rel. error|"}))
    glue("extrapolation_rms_N", float(extrapolation.loc["N", "rms_log_error"]), display=False)

# %% [markdown]
# *Hold-out refits: the largest model sizes (row N) or token counts (row D) are held out, and the refit's
# predictions for them are compared with their losses.*
#
# ## Summary

# %% tags=["hide-input"]
lines = [
    f"- **Recovery:** the unified QiD law fitted to {len(synthetic)} synthetic points with {NOISE_SIGMA:g} log-normal "
    f"noise returns every parameter within {recovery_worst_z:.1f} standard errors of the truth.",
    f"- **Coverage:** over {COVERAGE_REPETITIONS} synthetic data sets, nominal {CONFIDENCE:.0%} intervals covered the "
    f"true parameters {coverage_wald:.1%} (lmfit Wald) and {coverage_bootstrap:.1%} (bootstrap percentile) of the "
    f"time (binomial standard error per parameter ±{binomial_se:.1%}).",
]
if chinchilla_available:
    lines.append(
        f"- **Chinchilla:** Hoffmann et al.'s procedure through the generic fitter gives E = {chinchilla.params['E']:.4f}, "
        f"α = {chinchilla.params['alpha']:.4f}, β = {chinchilla.params['beta']:.4f}, A = {chinchilla.params['A']:.1f} "
        f"(Epoch: {target['E']}, {target['alpha']}, {target['beta']}, {target['A']}; largest relative difference in "
        f"E, α, β: {relative[['E', 'alpha', 'beta']].max():.3%}, in A: {relative['A']:.3%}) with Huber sum "
        f"{chinchilla.objective:.7f} (Epoch: {target['huber_sum']}), from {chinchilla.starts['n_run']} starts in "
        f"{chinchilla_seconds:.1f} s."
    )
    lines.append(
        f"- Holding out the {HOLDOUT_TOP} largest model sizes, the refit predicts their losses with an RMS log error "
        f"of {extrapolation.loc['N', 'rms_log_error']:.3f}."
    )
else:
    lines.append("- **Chinchilla:** skipped (Epoch's extracted points are not on this machine).")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## What's next
#
# With the fitter validated, the later chapters fit the QiD laws to the book's own measurements and load the
# saved fits (`qid.fitting.fit.load_fit`) to draw their projections with bootstrap bands.
#
# ## References
#
# {cite:t}`hoffmann2022chinchilla`, {cite:t}`besiroglu2024chinchilla`, {cite:t}`ouyang2024lowbit`,
# {cite:t}`newville2014lmfit`. Full entries are in the bibliography.
