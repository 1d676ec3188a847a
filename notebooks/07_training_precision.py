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
# # Training in low precision: Kumar et al.'s effective parameter count, measured
#
# ## Overview
#
# The earlier chapters quantize a model *after* training. {cite:t}`kumar2024precision` also train models whose
# weights, activations and KV cache are quantized in the forward pass (quantization-aware training, QAT), and find
# that precision acts like a loss of parameters: a model of N parameters trained at P_w-bit weights behaves like one
# of effective size
#
# $$N_{\mathrm{eff}} = N \prod_{x \in \{w, a, kv\}} \left(1 - e^{-P_x/\gamma_x}\right),
# \qquad L = A\,N_{\mathrm{eff}}^{-\alpha} + B\,D^{-\beta} + E,$$
#
# with $\gamma_w = 2.6745$, $\gamma_a = 2.2102$, $\gamma_{kv} = 0.9578$, and a compute-optimal training precision
# of about 7–8 bits. No code or data of theirs is public. This chapter trains the book's own grid of QAT runs
# (`qid.suite.qat`, `qid.suite.qat_grid`) on the suite's 4-layer model family, and:
#
# 1. shows the grid (what was trained, and what the shared CPU did not reach);
# 2. plots the held-out loss against the weight precision P_w per size and budget;
# 3. fits $\gamma_w$ (and $\gamma_a$, $\gamma_{kv}$ where those precisions were varied) with the book's fitter and
#    error model, beside Kumar et al.'s values;
# 4. computes the compute-optimal training precision (cost ∝ N·D·P) from our fit and from theirs;
# 5. quantizes the QAT checkpoints after training (GPTQ per output channel, 4 and 3 bits) and asks whether a model trained
#    at low precision is more or less robust to post-training quantization than a 16-bit-trained one of the same loss.
#
# ## Prerequisites
#
# - The grid's tables `data/qat/grid.csv` (one row per training run) and `data/qat/ptq.csv` (one row per run,
#   quantizer and P_post), with `data/qat/provenance.json`; columns in `data/README.md`. They are written by
#   `python -m qid.suite.qat_grid run` and `collect` (resumable; the whole design is planned below).
# - Chapter 4 (the fitter) and chapter 5 (Kumar et al.'s post-training law on the suite).
# - CPU only; a minute or two (the fits).

# %% [markdown]
# ## Imports

# %% tags=["hide-input"]
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from scipy.stats import chi2

from qid.chapters import precision_analysis as analysis
from qid.chapters.params import apply_chapter_parameters
from qid.chapters.plots import subplots
from qid.laws.registry import KUMAR_BASE_PUBLISHED, KUMAR_PRECISION_GAMMAS, get_law

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
GRID_TABLE = "data/qat/grid.csv"  # one row per QAT training run (qid.suite.qat_grid collect)
PTQ_TABLE = "data/qat/ptq.csv"  # post-training quantization of every weight-grid checkpoint
PROVENANCE = "data/qat/provenance.json"  # the grid's design, commits, corpus and what was not run
BOOTSTRAP_SAMPLES = 100  # bootstrap replicates of the gamma_w fit (0: lmfit's standard errors only)
CONFIDENCE = 0.95  # coverage of every interval (fraction)
SEED = 0  # seed of the fits' random starts and of the bootstrap
FIT_STARTS = 24  # random starts of the law fit
PTQ_METHOD = "gptq"  # post-training quantizer of the matched-loss comparison (the grid measures gptq)
PRECISIONS = [2.0, 16.0]  # range of training precisions scanned for the compute-optimal P* (bits)

# %% tags=["remove-cell"]
apply_chapter_parameters("07_training_precision", globals())
if not (len(PRECISIONS) == 2 and PRECISIONS[0] < PRECISIONS[1]):
    raise ValueError(f"PRECISIONS must be [low, high] bits with low < high, got {PRECISIONS}")
grid = analysis.load_grid(GRID_TABLE)
ptq = analysis.load_ptq(PTQ_TABLE)
provenance = json.loads(Path(PROVENANCE).read_text())
kumar = {**KUMAR_BASE_PUBLISHED, **KUMAR_PRECISION_GAMMAS}

# %% [markdown]
# ## The grid
#
# Every run is a cosine schedule from scratch, batch 8 × 128 tokens, with the weights (per output channel, the
# measurement package's round-to-nearest grid), the inputs of the block layers (per token) and the keys and values
# (per token and head) fake-quantized in the forward pass, and a straight-through estimator in the backward pass.
# Embeddings and the output head stay at full precision, as in the book's post-training quantization. 16 bits means
# "not quantized", and a 16-bit run is the plain trainer's run bit for bit (`tests/test_qat.py`). Each final
# checkpoint is evaluated on one fixed sample of held-out windows, in its training precision.

# %% tags=["hide-input"]
design = provenance["design"]
planned, measured = provenance["planned_runs"], provenance["measured_runs"]
display(analysis.design_table(grid).style.hide(axis="index"))
missing = provenance["not_run"]
display(Markdown(
    f"**{measured} of {planned} planned runs** were trained and measured "
    f"({provenance['train_wall_seconds'] / 60:.0f} minutes of training wall time summed over runs, on a machine shared "
    f"with other training; {provenance['planned_core_seconds'] / 60:.1f} core-minutes planned for the whole design "
    f"from measured single-thread throughput). Sizes {', '.join(design['sizes'])}; "
    f"budgets D/N = {', '.join(str(r) for r in design['rungs'])}; P_w ∈ {{{', '.join(map(str, design['weight_bits']))}}}; "
    f"P_a, P_kv ∈ {{{', '.join(map(str, design['activation_kv_bits']))}}} at {design['activation_kv_at'][0]}, "
    f"D/N {design['activation_kv_at'][1]}. Code at commit(s) {', '.join(provenance['commits'])}; corpus: issue 19's "
    f"10-source edition, committed as `data/corpus_v2` (fingerprint {', '.join(provenance['corpus'])}); on "
    f"{', '.join(provenance['machines'])}."
    + (f"\n\n**Not run**: {len(missing)} runs (the CPU was shared with the suite's training, which had priority; the "
       f"grid ran at nice 10, in phases, and is resumable: `python -m qid.suite.qat_grid run` finishes it):"
       if missing else "")))
if missing:
    display(analysis.missing_runs(missing).style.hide(axis="index"))
glue("qat_runs_measured", int(measured), display=False)
glue("qat_runs_planned", int(planned), display=False)

# %% [markdown]
# ## Loss against the weight precision
#
# Held-out loss (nats per token, in the run's training precision) against P_w, one panel per token budget, one
# colour per size; activations and KV cache at 16 bits. Error bars are the standard error over the evaluation
# windows (they are shared by every run, so differences between runs are more precise than the bars suggest;
# the seed-to-seed spread below is the relevant noise). Lines: the fitted law of the next section, where it is
# identified.

# %% tags=["hide-input"]
weights = grid[grid["part"] == "weights"]
spread_missing = len(analysis.seed_spread(grid)) < 2
fit, fixed = analysis.fit_precision_law(grid, bootstrap=BOOTSTRAP_SAMPLES, seed=SEED, starts=FIT_STARTS,
                                        confidence=CONFIDENCE)
rungs = sorted(weights["rung"].unique())
fig, axes = subplots(len(rungs), 1, figsize=(5, 3.0 * len(rungs) + 0.6), squeeze=False)  # own y range per budget
colors = dict(zip(sorted(weights["N"].unique()), ["#2980b9", "#e67e22", "#27ae60", "#8e44ad"]))
fine = np.linspace(3, 16, 200)
for ax, rung in zip(axes[:, 0], rungs):
    cell = weights[weights["rung"] == rung]
    for N, group in cell.groupby("N"):
        ax.errorbar(group["P_w"], group["loss"], yerr=group["loss_se"], fmt="o", ms=4, color=colors[N],
                    label=f"{group['size'].iloc[0]} (N = {N:,})", alpha=0.85)
        D = float(group["D"].iloc[0])
        if fit.converged and fit.identified:  # an unidentified fit is not drawn
            ax.plot(fine, fit.predict(N=N, D=D, P_w=fine, P_a=16, P_kv=16), color=colors[N], lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks([3, 4, 5, 6, 8, 16], labels=["3", "4", "5", "6", "8", "16"])
    ax.set_xlabel("weight precision in training P_w (bits)")
    ax.set_title(f"D/N = {rung:g}", fontsize=10)
for ax in axes[:, 0]:
    ax.set_ylabel("held-out loss (nats/token)")
handles, labels = axes[-1][0].get_legend_handles_labels()
legend = fig.legend(handles, labels, loc="outside lower center", ncol=2)  # below the panels: no point hidden

# %% tags=["hide-input"]
contrasts = []
for (size, rung), cell in weights[weights["seed"] == 0].groupby(["size", "rung"]):
    by_bits = cell.set_index("P_w")["loss"]
    if 16 in by_bits.index and 3 in by_bits.index:
        contrasts.append({"size": size, "rung": float(rung), "difference": float(by_bits[3] - by_bits[16])})
display(Markdown(
    "Loss at P_w = 3 minus loss at P_w = 16, same seed (same initialisation and data order, so the comparison is "
    "paired by construction): " + "; ".join(f"{c['size']} at D/N {c['rung']:g}: {c['difference']:+.4f} nats"
                                            for c in contrasts)
    + ". Kumar et al.'s law predicts a higher loss at 3 bits (N_eff = "
    f"{1 - math.exp(-3 / KUMAR_PRECISION_GAMMAS['gamma_w']):.2f}·N); a negative difference is the opposite sign."
    + (" Whether these differences exceed the seed-to-seed spread cannot be said from one seed." if spread_missing
       else "")))
glue("qat_loss_3_minus_16", contrasts, display=False)

# %% [markdown]
# ## γ_w fitted, beside Kumar et al.'s
#
# The effective-parameter law is fitted to every run with the book's fitter: residuals in loss, each divided by
# its run's window standard error, with a relative scatter fitted beyond those errors by maximum likelihood (the
# error model of chapters 4 and 5), random starts, and a bootstrap over runs for the intervals. Parameters the grid
# cannot determine are fixed (listed below with the reason): three sizes and two budgets cannot pin a D exponent
# beside B and E.

# %% tags=["hide-input"]
gamma_w = float(fit.params["gamma_w"])
gamma_interval = (tuple(fit.intervals["gamma_w"]) if fit.intervals and fit.intervals.get("gamma_w") is not None
                  else analysis.wald_interval(gamma_w, fit.stderr.get("gamma_w"), CONFIDENCE))
spread = analysis.seed_spread(grid)
seed_sd = float(spread["difference"].std(ddof=1) / math.sqrt(2)) if len(spread) >= 2 else math.nan
determined = bool(fit.converged and fit.identified and np.all(np.isfinite(gamma_interval)))
if not determined:
    gamma_interval = (math.nan, math.nan)
rows = []
for name in get_law(analysis.LAW).parameters:
    value = fit.params[name]
    if name in fixed:
        interval, how = ("", ""), f"fixed: {fixed[name][1]}"
    elif not determined:
        interval, how = ("", ""), "not determined by these runs"
    elif fit.intervals and name in fit.intervals and fit.intervals[name] is not None:
        interval, how = tuple(fit.intervals[name]), f"bootstrap ({BOOTSTRAP_SAMPLES} replicates)"
    else:
        interval, how = analysis.wald_interval(value, fit.stderr.get(name), CONFIDENCE), "lmfit standard error"
    rows.append({"parameter": name, "ours": f"{value:.4g}",
                 f"{CONFIDENCE:.0%} interval": (f"[{interval[0]:.3g}, {interval[1]:.3g}]"
                                                if interval[0] != "" and np.isfinite(interval[0]) else "–"),
                 "how": how, "Kumar et al.": f"{kumar[name]:.4g}"})
display(pd.DataFrame(rows).style.hide(axis="index"))
covers_kumar = bool(determined and gamma_interval[0] <= KUMAR_PRECISION_GAMMAS["gamma_w"] <= gamma_interval[1])
headline = (f"γ_w = **{gamma_w:.3g}** [{gamma_interval[0]:.3g}, {gamma_interval[1]:.3g}] (Kumar et al.: "
            f"{KUMAR_PRECISION_GAMMAS['gamma_w']}; {'inside' if covers_kumar else 'outside'} our interval). "
            if determined else
            f"**γ_w is not determined by these runs** (the fitter's best value {gamma_w:.3g} is not an estimate; Kumar "
            f"et al.: {KUMAR_PRECISION_GAMMAS['gamma_w']}). ")
display(Markdown(
    headline +
    f"Fit on {fit.n_points} runs, {fit.n_free} free parameters, converged: {fit.converged}, identified: "
    f"{fit.identified}{' (' + '; '.join(fit.identification) + ')' if fit.identification else ''}. "
    f"Fitted relative scatter beyond the window errors: {fit.extra_scatter if fit.extra_scatter is not None else float('nan'):.2g}"
    + (f"; the seed-to-seed spread of one run's loss, from {len(spread)} pairs of seeds, is {seed_sd:.3g} nats "
       f"(SD of a single run)." if len(spread) >= 2 else ".")))
glue("qat_gamma_w_determined", determined, display=False)
glue("qat_gamma_w", gamma_w if determined else None, display=False)
glue("qat_gamma_w_interval", [float(gamma_interval[0]), float(gamma_interval[1])], display=False)
glue("qat_gamma_w_covers_kumar", covers_kumar, display=False)

# %% [markdown]
# ### What the runs allow: the profile likelihood of γ_w
#
# Where the fit does not pin γ_w, the question becomes which values the runs rule out. We fix γ_w at each of 25
# values from 0.05 to 50 (the law's bounds), refit every other free parameter and the scatter, and keep the values
# whose deviance from the best stays under the χ²₁ quantile: the profile-likelihood region, the interval that
# remains honest when a parameter trades off against others (here γ_w against α: a steep N-exponent with a large A
# makes the loss insensitive to N_eff, and so to P_w).

# %% tags=["hide-input"]
profile, region = analysis.profile_gamma(grid, fixed, "gamma_w", starts=FIT_STARTS, seed=SEED, confidence=CONFIDENCE)
limit = float(chi2.ppf(CONFIDENCE, 1))
fig, ax = subplots(figsize=(5, 3.2))
ax.plot(profile["value"], profile["deviance"], marker="o", color="C0", label="our runs (profile)")
ax.axhline(limit, color="0.4", linestyle="--", label=f"χ²₁ {CONFIDENCE:.0%} limit")
ax.axvline(KUMAR_PRECISION_GAMMAS["gamma_w"], color="C3", linestyle=":", label="Kumar et al.'s γ_w")
ax.set_xscale("log")
ax.set_xlabel("γ_w (fixed)")
ax.set_ylabel("deviance from the best fit")
legend = ax.legend(loc="center left")  # assigned: no repr under the figure
low_text = "the law's bound 0.05 (no lower limit)" if region["low_open"] else f"{region['low']:.3g}"
high_text = "the law's bound 50 (no upper limit)" if region["high_open"] else f"{region['high']:.3g}"
kumar_in_region = region["low"] <= KUMAR_PRECISION_GAMMAS["gamma_w"] <= region["high"]
display(Markdown(
    f"The runs allow γ_w from {low_text} to {high_text} ({CONFIDENCE:.0%}, profile likelihood); Kumar et al.'s "
    f"{KUMAR_PRECISION_GAMMAS['gamma_w']} is {'inside' if kumar_in_region else 'outside'} this region. "
    + ("An open lower end means the runs resolve no effect of the weight precision at all: every P_w from 3 to 16 "
       "bits fits as well as 16 bits does, so the grid can only bound how strongly low-precision weights may cost, "
       "not show that they cost." if region["low_open"] else "")))
glue("qat_gamma_w_profile_region", [region["low"], region["high"]], display=False)
glue("qat_gamma_w_profile_low_open", bool(region["low_open"]), display=False)
glue("qat_gamma_w_profile_covers_kumar", bool(kumar_in_region), display=False)

# %% [markdown]
# ## The compute-optimal training precision
#
# With training cost ∝ N·D·P (constant factors dropped) and N chosen optimally for each P, the loss at fixed compute
# is minimised at a precision P*. When α = β (Kumar et al. tie them) P* maximises Π_x(1 − e^(−P/γ_x))/P whatever
# the compute, so it depends on the γ's alone, and on which tensors are trained at P. We show two readings of
# Kumar et al.'s constants (each γ for its own tensor; γ_w for all three) and ours. Neither reading of the printed
# constants gives the 7–8 bits the paper reports (both are computed below): which further assumption of theirs
# (another cost model, α ≠ β, or constants not printed) leads to 7–8 bits is open.

# %% tags=["hide-input"]
scan = np.arange(PRECISIONS[0], PRECISIONS[1] + 1e-9, 0.001)
ours_gammas = [float(fit.params[name]) for name in ("gamma_w", "gamma_a", "gamma_kv")]
readings = {
    "Kumar et al.: γ_w, γ_a, γ_kv each for its tensor": list(KUMAR_PRECISION_GAMMAS.values()),
    "Kumar et al.: γ_w for all three tensors": [KUMAR_PRECISION_GAMMAS["gamma_w"]] * 3,
    "weights only (activations and KV at 16 bits), Kumar et al.'s γ_w": [KUMAR_PRECISION_GAMMAS["gamma_w"]],
}
if determined:
    readings["ours: fitted γ_w for all three tensors"] = [gamma_w] * 3
    readings["ours: fitted γ_w (γ_a, γ_kv as in the fit table)"] = ours_gammas
optimum_rows = []
for label, gammas in readings.items():
    star = analysis.closed_form_precision(gammas, scan)
    at_edge = star <= scan[0] + 1e-6 or star >= scan[-1] - 1e-6
    optimum_rows.append({"reading": label, "P* (bits, α = β)": f"{star:.2f}" + (" (edge of the scan)" if at_edge else "")})
interval_known = bool(np.all(np.isfinite(gamma_interval)) and gamma_interval[0] > 0)
interval_star = [analysis.closed_form_precision([g] * 3, scan) for g in gamma_interval] if interval_known else [math.nan] * 2
star_range = (f"[{min(interval_star):.2f}, {max(interval_star):.2f}]" if interval_known
              else "(not determined: our γ_w has no finite interval)")
# P* grows with γ (a larger γ makes each bit worth more), so the profile region of γ_w bounds it on both sides
profile_star = [analysis.closed_form_precision([g] * 3, scan) for g in (region["low"], region["high"])]
star_at_top = profile_star[1] >= scan[-1] - 1e-6
profile_star_text = ("no bound on P* inside the scan (its upper end gives P* at the scan's top, "
                     f"{scan[-1]:g} bits)" if star_at_top else
                     f"P* ≤ {profile_star[1]:.2f} bits" if region["low_open"] else
                     f"P* ∈ [{profile_star[0]:.2f}, {profile_star[1]:.2f}] bits")
check = analysis.optimal_training_precision(kumar, list(KUMAR_PRECISION_GAMMAS.values()), compute=1e20,
                                            precisions=np.arange(2.0, 16.01, 0.05))
display(pd.DataFrame(optimum_rows).style.hide(axis="index"))
p_star_kumar_tied = analysis.closed_form_precision([KUMAR_PRECISION_GAMMAS["gamma_w"]] * 3, scan)
p_star_kumar_each = analysis.closed_form_precision(list(KUMAR_PRECISION_GAMMAS.values()), scan)
p_star_ours = analysis.closed_form_precision([gamma_w] * 3, scan) if determined else math.nan
display(Markdown(
    (f"Our γ_w interval maps to P* ∈ {star_range} bits (all three tensors at P). " if determined else
     f"Our fit does not determine γ_w, and its profile-likelihood region gives {profile_star_text} (γ_w for all three "
     f"tensors). ")
    + f"Check of the closed form against a direct search over N and P at C = 10^20 with Kumar et al.'s full law: "
    f"P* = {check['P']:.2f} bits (closed form {p_star_kumar_each:.2f}). With weights alone at P, "
    f"(1 − e^(−P/γ))/P falls for every P: the cheapest weights win and nothing stops the descent but the "
    f"law's validity: a finite P* needs the activations and KV cache in low precision too."))
glue("qat_p_star_kumar_tied", p_star_kumar_tied, display=False)
glue("qat_p_star_kumar_each", p_star_kumar_each, display=False)
glue("qat_p_star_ours", p_star_ours, display=False)
glue("qat_p_star_profile", [float(v) for v in profile_star], display=False)

# %% [markdown]
# ## Does low-precision training make post-training quantization hurt less?
#
# Each weight-grid checkpoint is quantized after training (per output channel) to P_post = 4 and 3 bits, and
# δ_PTQ is its loss minus its loss in training precision, on the same windows (a paired difference with its
# standard error). A model trained at lower P_w has a higher loss, and δ_PTQ grows as the loss falls (chapter 5),
# so the comparison is made at matched loss: a straight line through the 16-bit-trained runs' (loss, δ_PTQ) gives
# the δ_PTQ a 16-bit-trained model of the same loss would show; only P_post < P_w enters (at P_post ≥ P_w RTN
# changes nothing by construction).

# %% tags=["hide-input"]
matched = analysis.matched_loss_ptq(ptq, PTQ_METHOD)
fig, axes = subplots(2, 1, figsize=(5, 6.4), squeeze=False)
summary_rows = []
for ax, P_post in zip(axes[:, 0], (4, 3)):
    cell = ptq[(ptq["method"] == PTQ_METHOD) & (ptq["P_post"] == P_post)]
    reference = cell[cell["P_w"] == 16]
    ax.errorbar(reference["loss"], reference["delta_ptq"], yerr=reference["delta_ptq_se"], fmt="s", color="#7f8c8d",
                label="trained at 16 bits", ms=4)
    if len(reference) >= 2:
        line = np.polyfit(reference["loss"], reference["delta_ptq"], 1)
        xs = np.linspace(cell["loss"].min(), cell["loss"].max(), 20)
        ax.plot(xs, np.polyval(line, xs), color="#7f8c8d", lw=1)
    for P_w, group in cell[(cell["P_w"] < 16) & (cell["P_w"] > P_post)].groupby("P_w"):
        ax.errorbar(group["loss"], group["delta_ptq"], yerr=group["delta_ptq_se"], fmt="o", ms=4,
                    label=f"trained at P_w = {P_w}")
    ax.set_xlabel("loss in training precision (nats/token)")
    ax.set_ylabel(f"δ_PTQ, {PTQ_METHOD.upper()} to {P_post} bits (nats)")
    ax.legend()
    rows_here = matched[(matched["P_post"] == P_post) & matched["in_range"]]
    mean, low, high, n = analysis.mean_with_interval(rows_here["difference"], CONFIDENCE)
    summary_rows.append({"P_post": P_post, "QAT runs (in the 16-bit loss range)": n,
                         "mean δ_PTQ(QAT) − δ_PTQ(16-bit, matched loss)": f"{mean:.3g}" if n else "–",
                         f"{CONFIDENCE:.0%} interval": f"[{low:.3g}, {high:.3g}]" if n >= 2 else "–"})
display(pd.DataFrame(summary_rows).style.hide(axis="index"))
ptq_verdicts = {}
for row in summary_rows:
    rows_here = matched[(matched["P_post"] == row["P_post"]) & matched["in_range"]]
    mean, low, high, n = analysis.mean_with_interval(rows_here["difference"], CONFIDENCE)
    verdict = ("not estimable (fewer than two QAT runs inside the 16-bit-trained runs' loss range)"
               if n < 2 or not np.isfinite(low)
               else "QAT checkpoints are more robust (less δ_PTQ) than 16-bit-trained ones of the same loss" if high < 0
               else "QAT checkpoints are less robust (more δ_PTQ) than 16-bit-trained ones of the same loss" if low > 0
               else "no difference resolved between QAT checkpoints and 16-bit-trained ones of the same loss")
    ptq_verdicts[int(row["P_post"])] = {"mean": mean, "low": low, "high": high, "n": n, "verdict": verdict}
display(Markdown("\n".join(f"- {P_post}-bit {PTQ_METHOD.upper()}: {v['verdict']}"
                           + (f" (mean difference {v['mean']:.3g} nats [{v['low']:.3g}, {v['high']:.3g}], {v['n']} runs)."
                              if v['n'] >= 2 and np.isfinite(v['low']) else ".")
                           for P_post, v in ptq_verdicts.items())))
glue("qat_ptq_verdicts", {str(k): v["verdict"] for k, v in ptq_verdicts.items()}, display=False)

# %% [markdown]
# ## What this scale cannot show
#
# - **Size.** Our models have 1.3·10^4–5.1·10^4 non-embedding parameters, three to four decades below Kumar et al.'s
#   30M–220M, with a 1,024-token vocabulary and 128-token context. A γ_w is a property of the fitted form at that
#   scale; whether it transfers is exactly what cannot be tested here.
# - **Budgets.** Two token budgets (D/N 5 and 20, 64 and 257 optimizer steps at the smallest size) cannot determine a
#   D exponent: β is fixed at Kumar et al.'s value, so the fit's A, B, E describe these runs and nothing more. Kumar
#   et al.'s budgets reach D/N ≈ 800. At D/N ≤ 20 our models are limited by data, not by capacity: the loss is far
#   above what the N term alone would allow, so shrinking N to N_eff barely moves it, and any effect of the
#   quantization noise on the optimization itself (which the law does not model) can dominate.
# - **Learning rates.** One peak rate per size, not tuned per precision; low-precision training may prefer another
#   rate, and such a preference would be absorbed into γ_w.
# - **Precisions of activations and KV cache.** Varied at one size and budget only: γ_a and γ_kv rest on nine runs,
#   and both go to the law's lower bound (no effect of 4-bit activations or KV cache is resolved either).
# - **Compute optimum.** P* is a property of the fitted form extrapolated over all N and D; nothing here trains a
#   compute-matched pair to check it.
#
# ## Summary

# %% tags=["hide-input"]
lines = [
    f"- {measured} of {planned} planned QAT runs trained and measured (sizes {', '.join(sorted(grid['size'].unique()))}, "
    f"budgets D/N {', '.join(f'{r:g}' for r in sorted(grid['rung'].unique()))})"
    + ("; the rest were not run (listed above)." if missing else "."),
    (f"- γ_w = {gamma_w:.3g} [{gamma_interval[0]:.3g}, {gamma_interval[1]:.3g}] ({CONFIDENCE:.0%}), beside Kumar et al.'s "
     f"{KUMAR_PRECISION_GAMMAS['gamma_w']} ({'inside' if covers_kumar else 'outside'} the interval)." if determined else
     f"- γ_w: the fit does not determine it; the runs allow γ_w from {low_text} to {high_text} ({CONFIDENCE:.0%}, "
     f"profile likelihood), which {'includes' if kumar_in_region else 'excludes'} Kumar et al.'s "
     f"{KUMAR_PRECISION_GAMMAS['gamma_w']}: no effect of training at 3–8-bit weights is resolved at this scale "
     f"(paired loss differences of ±0.03 nats against a seed-to-seed SD of {seed_sd:.2g} nats)."),
]
for name, column in (("gamma_a", "P_a"), ("gamma_kv", "P_kv")):
    if name not in fixed and determined:
        low_high = (fit.intervals or {}).get(name) or analysis.wald_interval(fit.params[name], fit.stderr.get(name), CONFIDENCE)
        lines.append(f"- {name} = {fit.params[name]:.3g} [{low_high[0]:.3g}, {low_high[1]:.3g}] beside Kumar et al.'s "
                     f"{KUMAR_PRECISION_GAMMAS[name]}.")
    else:
        reason = fixed[name][1] if name in fixed else "the fit is not identified"
        lines.append(f"- {name}: not fitted ({reason}); Kumar et al.'s {KUMAR_PRECISION_GAMMAS[name]} used.")
lines.append(f"- Compute-optimal training precision (cost ∝ N·D·P, all three tensors at P): "
             + (f"{p_star_ours:.2f} bits from our γ_w {star_range}; " if determined else "not computable from our fit; ")
             + f"Kumar et al.'s γ_w gives "
             f"{p_star_kumar_tied:.2f} bits and their three separate γ's {p_star_kumar_each:.2f} bits (the paper "
             f"reports 7–8 bits: not reproduced from its printed constants under this cost model).")
lines += [f"- {P_post}-bit {PTQ_METHOD.upper()} after training: {v['verdict']}." for P_post, v in ptq_verdicts.items()]
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## References
#
# {cite:t}`kumar2024precision`; the fitter of chapter 4 {cite:p}`newville2014lmfit`. Full entries are in the
# bibliography.
