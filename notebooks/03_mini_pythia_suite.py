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
# # A suite that can test the laws: N crossed with D/N
#
# ## Overview
#
# {cite:t}`ouyang2024lowbit` fit how quantization-induced degradation (QiD: the loss of the weight-quantized
# model minus that of the 16-bit model, in nats per token) grows with training tokens D and shrinks with model
# size N. A law in N and D can only be tested on data where the two vary independently. The book therefore
# trains its own GPT-NeoX suite as a scaling-law experiment:
#
# - **N crossed with D/N.** Four sizes over more than a decade of non-embedding parameters, each trained to the
#   same ladder of tokens per parameter (D/N = 5, 10, 20, 40, 80, and 160, 320 for the smaller sizes).
# - **Two schedule designs on the same ladder.** A cosine run per size with a checkpoint at every rung
#   (Pythia's design: only the last is annealed), and a warmup-stable-decay (WSD) run whose constant-rate
#   checkpoints sit on the rungs, with a decay branch ending at every rung (equivalent to separately annealed
#   runs, the design of {cite:t}`kumar2024precision`).
# - **A trained regime.** Each size's peak learning rate comes from a short sweep, and every checkpoint is
#   compared with n-gram models on the same windows.
# - **The noise that matters.** Two training seeds of every cosine run, three calibration seeds of GPTQ and AWQ
#   on three checkpoints per size, and a whole-split check of the evaluation windows.
#
# Every checkpoint on the ladder is quantized with RTN, GPTQ and AWQ at 2, 3, 4 and 8 bits. Beside QiD, the
# chapter reports the KL divergence of the quantized model's next-token distribution from the 16-bit model's
# and their top-1 agreement: what users of quantization tools usually compare.
#
# ## Prerequisites
#
# - The suite's tables in `data/suite/` (`cpu_*.csv`, `cpu_window_losses.csv.gz`, `cpu_provenance.json`),
#   written by `qid train-suite --preset cpu --workers 2 --threads 1 --measure`, which trains, measures and
#   writes them in one resumable command (see `data/README.md`). The book does not retrain the suite; it
#   re-creates one small slice live at the end. With `PRESET = "tiny"` the chapter trains and measures the tiny
#   preset itself (a few minutes on a CPU).
# - Chapter 2 explains how one QiD is measured (paired windows, standard errors).

# %% [markdown]
# ## Imports

# %% tags=["hide-input"]
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from qid.chapters.quiet import quiet_libraries

quiet_libraries()  # no progress bars or library notes in the book (before torchao is imported by transformers)
import torch  # noqa: E402
from IPython.display import Markdown, display
from myst_nb import glue

from qid.suite import corpus, pipeline as suite_pipeline, plan as suite, tables as suite_tables

from qid.fitting import errormodel

from qid.chapters import schedule_analysis, suite_analysis
from qid.suite import train as training
from qid.suite.models import mini_shape
from qid.chapters.plots import bit_color, log_axes, subplots
from qid.laws.reference import scale_gap_statement

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without widgets

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
PRESET = "cpu"  # suite preset whose tables are shown: "cpu" (committed) or "tiny" (made here if missing)
SUITE_DIR = "data/suite"  # folder of the committed suite tables
METHODS = ["rtn", "gptq", "awq"]  # quantizers to show: subset of rtn, gptq, awq
BITS = [2, 3, 4, 8]  # weight bit widths to show: subset of 2, 3, 4, 8
MAIN_METHOD = "gptq"  # quantizer of the main figures
MIN_RUNG = 20.0  # trends and design comparisons use checkpoints with D/N ≥ MIN_RUNG (tokens per parameter)
LIVE_METHODS = ["rtn", "gptq"]  # live slice: quantizers re-measured; an empty list skips the live slice
LIVE_BITS = [2, 3]  # live slice: bit widths re-measured
LIVE_THREADS = 1  # torch CPU threads for the live slice (the committed suite ran 1 per process)
LIVE_DIR = "runs/live/03_mini_pythia_suite"  # scratch folder for the live slice and the tiny preset (gitignored)

# %% tags=["remove-cell"]
from qid.chapters.params import apply_chapter_parameters

apply_chapter_parameters("03_mini_pythia_suite", globals())
TABLES = suite_pipeline.ensure_tables(PRESET, SUITE_DIR, LIVE_DIR)
preset = suite.get_preset(PRESET)
checkpoints = suite_tables.load_suite_table("checkpoints", PRESET, TABLES)
train_log = suite_tables.load_suite_table("train_log", PRESET, TABLES)
lr_sweep = suite_tables.load_suite_table("lr_sweep", PRESET, TABLES)
qid_all = suite_tables.load_suite_table("qid", PRESET, TABLES)
baselines = suite_tables.load_suite_table("baselines", PRESET, TABLES)
windows = suite_tables.load_suite_table("window_losses", PRESET, TABLES)
full_split_path = Path(TABLES) / f"{PRESET}_full_split.csv"
full_split = pd.read_csv(full_split_path) if full_split_path.is_file() else pd.DataFrame()
provenance = json.loads((Path(TABLES) / f"{PRESET}_provenance.json").read_text())
qid = qid_all[qid_all["method"].isin(METHODS) & qid_all["bits"].isin(BITS)].copy()
SIZES = [size for size in preset.sizes if size in set(qid["size"])]
N_OF = {size: int(qid.loc[qid["size"] == size, "N"].iloc[0]) for size in SIZES}
size_colors = dict(zip(SIZES, ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]))
seed0 = qid[qid["calib_seed"].isna() | (qid["calib_seed"] == 0)]
RUNG_NOTE = ""
if not (qid_all["rung"] >= MIN_RUNG).any():  # a small preset (tiny) stops below the rung where trends start
    RUNG_NOTE = (f" Preset `{PRESET}` has no rung at D/N ≥ {MIN_RUNG:g}, so its trends and comparisons use every "
                 f"rung from {qid_all['rung'].min():g}.")
    MIN_RUNG = float(qid_all["rung"].min())

# %% [markdown]
# ## The design and its cost
#
# One row per size: its shape, the ladder it reaches, the longest run's tokens and epochs over the training
# split, the learning rate the sweep chose, and the measured single-thread training throughput.

# %% tags=["remove-input"]
design = []
for size in SIZES:
    shape = mini_shape(size)
    rows = checkpoints[checkpoints["size"] == size]
    chosen = lr_sweep[(lr_sweep["size"] == size) & lr_sweep["chosen"]]
    design.append({"size": size, "N (non-embedding)": N_OF[size], "layers": shape.layers, "d_model": shape.d_model,
                   "rungs (D/N)": f"{min(preset.rungs(size)):g}–{max(preset.rungs(size)):g} ({len(preset.rungs(size))})",
                   "max tokens": int(rows["tokens"].max()), "max epochs": round(float(rows["epochs"].max()), 2),
                   "peak lr": float(chosen["max_lr"].iloc[0]) if len(chosen) else preset.max_lr.get(size),
                   "tokens/s (1 thread)": provenance["training_tokens_per_second_by_size"].get(size)})
design = pd.DataFrame(design)
display(design.style.hide(axis="index").format({"N (non-embedding)": "{:,}", "max tokens": "{:,}", "max epochs": "{:.2f}",
                                               "tokens/s (1 thread)": "{:,.0f}", "peak lr": "{:g}"}))
stage_seconds = provenance.get("wall_s_by_stage", {})
train_seconds = stage_seconds.get("lr_sweep", 0) + stage_seconds.get("main", 0)
measure_seconds = stage_seconds.get("measure", 0)
decades = float(np.log10(max(N_OF.values()) / min(N_OF.values())))
display(Markdown(
    f"The sizes span **{decades:.2f} decades** of N. The whole suite took **{sum(stage_seconds.values()) / 60:.0f} "
    f"minutes** of wall time on 2 cores: {train_seconds / 60:.0f} min of training (learning-rate sweep "
    f"{stage_seconds.get('lr_sweep', 0) / 60:.0f} min, both designs {stage_seconds.get('main', 0) / 60:.0f} min) and "
    f"{measure_seconds / 60:.0f} min of measurement, on a machine shared with other jobs. The corpus has "
    f"{provenance['corpus_train_tokens']:,} training tokens, so no run repeats its data more than "
    f"{checkpoints['epochs'].max():.2f} times. " + scale_gap_statement(qid_all) + RUNG_NOTE))

# %% [markdown]
# **Why a 1,024-token vocabulary.** At these widths (d_model 32–64) the output layer over the vocabulary costs as
# much as the transformer blocks; a small vocabulary keeps the cost in the blocks that get quantized and turns the
# 27 million characters of the corpus into 10 million training tokens. The sizes come from the measured
# throughput: the planned budget (`qid.suite.plan.budget_table`) put training at about an hour of one core per design,
# and the two largest sizes stop at D/N 160 and 80 because their last rungs are the most expensive.

# %% [markdown]
# ## Learning-rate sweep
#
# Each size was trained with five peak learning rates (a factor 2 apart) for 20 tokens per parameter (at least
# 1M tokens), cosine to 10 %; the lowest held-out loss chose the rate of both designs. Every chosen rate is inside
# the grid, not at its edge.

# %% tags=["hide-input"]
fig, ax = subplots(figsize=(5, 3.6))
for size in SIZES:
    rows = lr_sweep[lr_sweep["size"] == size].sort_values("max_lr")
    if rows.empty:
        continue
    ax.plot(rows["max_lr"], rows["eval_loss"], "o-", color=size_colors[size], label=f"{size} (N={N_OF[size]:,})")
    best = rows[rows["chosen"]]
    ax.plot(best["max_lr"], best["eval_loss"], "*", color=size_colors[size], markersize=14)
ax.set_xscale("log")
ax.set_xlabel("peak learning rate")
ax.set_ylabel("held-out loss after the sweep run (nats/token)")
ax.legend(title="size")
plt_sweep = fig

# %% [markdown]
# *Figure: held-out loss at the end of each sweep run; stars mark the chosen rates.*
#
# ## Loss curves and n-gram baselines
#
# A model that has not beaten a bigram model has not learned much beyond word statistics; its QiD says little
# about trained language models. The baselines below are interpolated n-gram models counted on the training
# split, tuned on the calibration split and scored on the same evaluation windows as the suite.

# %% tags=["remove-input"]
display(baselines.pivot_table(index="model", columns="split_sample", values="loss").round(3)
        .reindex(["unigram", "bigram", "trigram"]).rename_axis(None, axis=1))

# %% tags=["hide-input"]
bigram = suite_analysis.baseline(baselines, "bigram")
trigram = suite_analysis.baseline(baselines, "trigram")
regime = suite_analysis.trained_regime(qid_all, baselines)
fig, axes = subplots(2, 1, figsize=(5, 6.6), sharey=True)
for ax, design_name in zip(axes, ("cosine", "wsd")):
    for size in SIZES:
        rows = regime[(regime["size"] == size) & (regime["design"] == design_name)]
        if design_name == "cosine":
            for seed, group in rows.groupby("train_seed"):
                group = group.sort_values("tokens")
                ax.plot(group["tokens_per_parameter"], group["loss_16"], "o-" if seed == 0 else "x--",
                        color=size_colors[size], label=f"{size}" if seed == 0 else None, alpha=1 if seed == 0 else 0.6)
        else:
            stable = rows[rows["phase"] == "stable"].sort_values("tokens")
            decayed = rows[rows["phase"] == "decayed"].sort_values("tokens")
            ax.plot(stable["tokens_per_parameter"], stable["loss_16"], "o-", color=size_colors[size], label=size)
            ax.plot(decayed["tokens_per_parameter"], decayed["loss_16"], "v", color=size_colors[size], markersize=7)
    for value, name in ((bigram, "bigram"), (trigram, "trigram")):
        ax.axhline(value, color="black", linestyle=":" if name == "bigram" else "-.", linewidth=1)
        ax.text(5, value, f" {name}", va="bottom")
    ax.set_xlim(3, 1.2 * max(preset.ladder))
    ax.set_xscale("log")
    ax.set_xlabel("tokens per parameter D/N")
    ax.set_title({"cosine": "cosine (o seed 0, x seed 1)", "wsd": "WSD (o constant lr, ▼ decayed)"}[design_name],
                 fontsize=11)
axes[0].set_ylabel("16-bit loss on the eval windows (nats/token)")
axes[0].legend(title="size")
plt_losses = fig

# %% [markdown]
# *Figure: 16-bit loss of every measured checkpoint on the evaluation windows against D/N, with the bigram and
# trigram baselines.*

# %% tags=["remove-input"]
beats = regime.assign(at_or_above_rung=regime["rung"] >= MIN_RUNG)
summary = (beats.groupby(["size", "at_or_above_rung"])["beats_bigram"].agg(["sum", "count"]).unstack())
summary.columns = [f"{'D/N ≥ ' + format(MIN_RUNG, 'g') if above else 'D/N < ' + format(MIN_RUNG, 'g')}: "
                   f"{'beat the bigram' if what == 'sum' else 'checkpoints'}" for what, above in summary.columns]
display(summary.reindex(SIZES))
ordering = suite_analysis.loss_ordering(qid_all, MIN_RUNG)
display(ordering.rename(columns={"losses": "annealed 16-bit loss, smallest N first"}).style.hide(axis="index"))
fit_rows = beats[beats["at_or_above_rung"]]
glue("suite_bigram", round(bigram, 4), display=False)
glue("suite_beats_bigram_share", float(fit_rows["beats_bigram"].mean()), display=False)
glue("suite_ordered_rungs", int(ordering["ordered_by_N"].sum()), display=False)
glue("suite_rungs_checked", int(len(ordering)), display=False)

# %% [markdown]
# The first table counts, per size, the checkpoints that beat the bigram out of all, below and above the rung
# where trends start; the suite's QiD table marks each row (`beats_bigram`), and chapter 5's fits use those rows. The second checks that at every rung from D/N = 20 the annealed models (the
# WSD decay branches, which end annealed at every rung) have lower loss the larger they are. Checkpoints that do
# not beat the bigram stay in every table; the trend estimates below start at `MIN_RUNG`.
#
# ## QiD against D/N, one panel per bit width
#
# The main quantizer's QiD on every cosine checkpoint (both training seeds, calibration seed 0), with ±1 standard
# error over the evaluation windows. The y axis is symmetric-logarithmic: QiD near zero can be negative.

# %% tags=["hide-input"]
def qid_panels(table, method, x, title_x, by="size", xlog=True):
    panel_bits = [b for b in BITS]
    fig, axes = subplots(2, 2, figsize=(5, 5.6), sharex=True)
    for ax, bits in zip(axes.ravel(), panel_bits):
        rows = table[(table["method"] == method) & (table["bits"] == bits)]
        for key, group in rows.groupby(by, sort=False):
            group = group.sort_values(x)
            color = size_colors.get(key, None)
            ax.errorbar(group[x], group["qid"], yerr=group["qid_se"], fmt="o", markersize=4, capsize=2,
                        color=color, alpha=0.85, label=str(key))
            means = group.groupby(x)["qid"].mean()
            ax.plot(means.index, means.values, "-", color=color, alpha=0.6)
        if xlog:
            ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"{bits} bits", fontsize=11, color=bit_color(bits))
        ax.set_ylabel("QiD (nats/token)")
    for ax in axes[-1]:
        ax.set_xlabel(title_x)
    axes[0, 0].legend(title=by)
    return fig


cosine = seed0[seed0["design"] == "cosine"]
fig_dn = qid_panels(cosine, MAIN_METHOD, "tokens_per_parameter", "tokens per parameter D/N")

# %% [markdown]
# *Figure: {glue:text}`main_method` QiD against D/N for every size (points: both training seeds; line: their
# mean).*

# %% tags=["remove-cell"]
glue("main_method", MAIN_METHOD.upper(), display=False)

# %% [markdown]
# ## QiD against N at fixed D/N
#
# The same measurements read across sizes. At a fixed D/N the larger model has also seen more tokens: under the
# paper's law $\mathrm{QiD} \propto D^{\beta}/N^{\alpha}$, QiD at fixed D/N grows like $N^{\beta-\alpha}$, so lines
# rising to the right are what the law predicts when β > α (published: β = 0.53, α = 0.23). The test of α alone is
# at fixed D, below.

# %% tags=["hide-input"]
at_rungs = cosine[cosine["rung"] >= 5].copy()
at_rungs["rung_label"] = at_rungs["rung"].map(lambda r: f"D/N {r:g}")
rung_palette = dict(zip(sorted(at_rungs["rung"].unique()), ["#fdd49e", "#fdbb84", "#fc8d59", "#ef6548", "#d7301f",
                                                             "#b30000", "#7f0000"]))
fig, axes = subplots(2, 2, figsize=(5, 5.6), sharex=True)
for ax, bits in zip(axes.ravel(), BITS):
    rows = at_rungs[(at_rungs["method"] == MAIN_METHOD) & (at_rungs["bits"] == bits)]
    for rung, group in rows.groupby("rung"):
        means = group.groupby("N").agg(qid=("qid", "mean"), se=("qid_se", "mean")).reset_index()
        ax.errorbar(means["N"], means["qid"], yerr=means["se"], fmt="o-", capsize=2, markersize=4,
                    color=rung_palette[rung], label=f"{rung:g}")
    ax.set_xscale("log")
    ax.set_xticks(list(N_OF.values()), [f"{size}" for size in N_OF], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_title(f"{bits} bits", fontsize=11, color=bit_color(bits))
for ax in axes[:, 0]:
    ax.set_ylabel("QiD (nats/token)")
fig.supxlabel("model size (non-embedding parameters N)")  # one label: two would overlap at page width
axes[0, 0].legend(title="D/N", ncol=2)
fig_n = fig

# %% [markdown]
# *Figure: QiD against N at each rung of the ladder (cosine checkpoints, mean of the two training seeds).*
#
# ## The trends, with t intervals
#
# Weighted least-squares slopes of QiD on ln D (per size), on ln N at fixed D/N (per rung) and on ln N at fixed D
# (each size's QiD interpolated in ln D to common token counts), on the cosine checkpoints at D/N ≥ `MIN_RUNG`
# (fixed D: over the whole ladder), weights 1/SE², t quantiles on n − 2 degrees of freedom, the standard error
# inflated when the points scatter more than their SEs say. Every row is used, whatever its significance. The
# paper's trends are a positive slope in D and a negative slope in N at fixed D.

# %% tags=["remove-input"]
in_d = suite_analysis.trends(seed0[seed0["design"] == "cosine"], "tokens", ["method", "bits", "size"], min_rung=MIN_RUNG)
in_n = suite_analysis.trends(seed0[seed0["design"] == "cosine"], "N", ["method", "bits", "rung"], min_rung=MIN_RUNG)
grid = [2.5e5, 5e5, 1e6, 2e6, 4e6, 8e6]  # common token counts (covered by at least 3 sizes)
in_fixed_d = suite_analysis.trends_at_fixed_tokens(seed0, METHODS, [b for b in BITS if b < 8], grid)
in_fixed_d["falls with N"] = suite_analysis.sign_verdicts(in_fixed_d, expected_sign=-1)  # the paper's α > 0
in_d["rises with D"] = suite_analysis.sign_verdicts(in_d, expected_sign=+1)  # the paper's β > 0
in_n["rises with N"] = suite_analysis.sign_verdicts(in_n, expected_sign=+1)  # the law at fixed D/N when β > α


def verdict_table(frame, column):
    """method × bits: how many slopes have the expected sign (interval excludes zero) / the opposite / neither."""
    if frame.empty:
        return pd.DataFrame({"": ["no slopes (too few points)"]})

    def cell(group):
        counts = group[column].value_counts()
        return f"{counts.get('yes', 0)} yes · {counts.get('opposite', 0)} opposite · {counts.get('not resolved', 0)} n.r."
    return frame.groupby(["method", "bits"]).apply(cell, include_groups=False).unstack("bits")


count_d = verdict_table(in_d, "rises with D")
count_n = verdict_table(in_n, "rises with N")
display(Markdown("**dQiD/d ln D per size** (counts of sizes: rising / falling / not resolved, per quantizer and "
                 "bit width):"))
display(count_d)
display(Markdown("**dQiD/d ln N at fixed D/N, per rung** (counts of rungs: rising, as the law predicts / falling / "
                 "not resolved):"))
display(count_n)
count_fixed = verdict_table(in_fixed_d, "falls with N")
display(Markdown("**dQiD/d ln N at fixed D** (counts of token counts: falling, the paper's α > 0 / rising / not "
                 "resolved):"))
display(count_fixed)
negative_share = float((in_fixed_d["slope"] < 0).mean()) if len(in_fixed_d) else float("nan")

# %% tags=["hide-cell"]
display(in_d.round(6))
display(in_n.round(6))
display(in_fixed_d.round(6))

# %% [markdown]
# ## Where the noise comes from
#
# Each QiD row has three sources of error, each measured by the suite (`qid.fitting.errormodel`): the evaluation windows
# (the paired standard error of every row), the calibration sample (three seeds on a few checkpoints per size),
# and the training seed (two seeds of every cosine run). The two seed components grow with QiD: each is modelled as
# $a^2 + (r\cdot\mathrm{QiD})^2$ per quantizer and bit width (chapter 5 shows the fit and checks it on held-out
# seeds). Median standard deviations over the rows at D/N ≥ `MIN_RUNG`, in nats per token, side by side:

# %% tags=["remove-input"]
# The error model learns from every row of the shown quantizers; the table summarises the rows at D/N ≥ MIN_RUNG.
with_errors, _ = errormodel.variance_components(qid_all[qid_all["method"].isin(METHODS)])
with_errors = with_errors[with_errors["rung"] >= MIN_RUNG]
noise = (with_errors.assign(windows=np.sqrt(with_errors["var_window"]),
                            calibration=np.sqrt(with_errors["var_calibration"]),
                            training_seed=np.sqrt(with_errors["var_training"]))
         .groupby(["method", "size", "bits"])[["windows", "calibration", "training_seed"]].median().reset_index())
noise["calibration"] = noise["calibration"].where(noise["calibration"] > 0)  # RTN has no calibration sample
noise = noise[noise["bits"].isin(BITS)]
sd_columns = ["windows", "calibration", "training_seed"]
main_noise = noise[noise["method"] == MAIN_METHOD].set_index(["bits", "size"])[sd_columns]
main_noise = main_noise.reindex(pd.MultiIndex.from_product([sorted(noise["bits"].unique()), SIZES],
                                                         names=["bits", "size"]))
display(Markdown(f"**{MAIN_METHOD.upper()}**, standard deviations (nats/token):"))
display(main_noise.rename(columns=lambda c: c.replace("_", " ")).style.format("{:.1e}", na_rep="–"))

# %% tags=["hide-input"]
fig, axes = subplots(3, 1, figsize=(5, 8.4), sharey=True)
main_rows = noise[noise["method"] == MAIN_METHOD]
for ax, column in zip(axes, sd_columns):
    for size in SIZES:
        rows = main_rows[main_rows["size"] == size].sort_values("bits")
        values = rows[column].where(rows[column] > 0)
        ax.plot(rows["bits"], values, "o-", color=size_colors[size], label=size)
    ax.set_yscale("log")
    ax.set_xlabel("bits")
    ax.set_title(column.replace("_", " "), fontsize=11)
axes[0].set_ylabel(f"{MAIN_METHOD.upper()} standard deviation (nats/token)")
axes[0].legend(title="size")
fig_noise = fig

# %% [markdown]
# *Figure: the three error components of the main quantizer's QiD by size and bit width (medians over the rows at
# D/N ≥ `MIN_RUNG` of the window SE and of the error model's calibration and training-seed standard deviations).*
#
# ## QiD, KL divergence and top-1 agreement
#
# Users of quantization tools compare models by the KL divergence of their next-token distributions or by how
# often their top-1 predictions agree. On the suite the three measures rank the cells in nearly the same order:

# %% tags=["hide-input"]
fig, axes = subplots(2, 1, figsize=(5, 6.6))
for method, marker in (("rtn", "o"), ("gptq", "s"), ("awq", "^")):
    rows = seed0[(seed0["method"] == method)]
    if rows.empty:
        continue
    axes[0].scatter(rows["kl"], rows["qid"], s=8, marker=marker, alpha=0.5, label=method.upper(),
                    c=[bit_color(b) for b in rows["bits"]])
    axes[1].scatter(1 - rows["top1_agree"], rows["qid"], s=8, marker=marker, alpha=0.5, label=method.upper(),
                    c=[bit_color(b) for b in rows["bits"]])
for ax, label in zip(axes, ("KL(p₁₆ ‖ p_q) (nats/token)", "top-1 disagreement (fraction of tokens)")):
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel(label)
axes[0].set_ylabel("QiD (nats/token)")
axes[0].legend(title="marker")
fig_kl = fig
spearman_kl = float(seed0[["kl", "qid"]].corr(method="spearman").iloc[0, 1])
glue("suite_spearman_kl", round(spearman_kl, 3), display=False)

# %% [markdown]
# *Figure: QiD against KL divergence and against top-1 disagreement for every cell (colour: bit width).* Spearman
# rank correlation of QiD with KL: {glue:text}`suite_spearman_kl`.
#
# ## Schedule designs: does decay add QiD beyond what the lower loss predicts?
#
# {cite:t}`catalan2025dynamics` argue that QiD jumps when the learning rate decays. The WSD design measures this
# in one analysis shared with chapter 6 (`qid.chapters.schedule_analysis.schedule_effect`, so both chapters print
# the same numbers). **At matched tokens**, a decay branch is compared with its constant-rate run at the same rung:
# the whole effect of decaying, including the lower loss it brings. **At matched 16-bit loss**, the branch is
# compared with the constant-rate run's QiD interpolated to the branch's own loss, linearly in log QiD (QiD is
# convex in the loss: linear interpolation cuts the chord and over-predicts, as the leave-one-out check below
# shows); the constant-rate comparator has then seen more tokens than the branch, and that **token gap** is
# reported beside it. Checkpoints of one WSD family (a size's constant-rate run and its branches) share a trunk,
# so every interval is a t interval over families (one mean per family), not over checkpoints.

# %% tags=["hide-input"]
schedule_results = {(method, bits): schedule_analysis.schedule_effect(qid_all, method, bits, MIN_RUNG)
                    for method in METHODS for bits in BITS if bits < 8}


def effect_cell(summary, digits=".2e"):
    return (f"{summary['mean']:{digits}} [{summary['low']:{digits}}, {summary['high']:{digits}}]"
            if summary["families"] > 1 else "–")


schedule_table = pd.DataFrame([{
    "method": method, "bits": bits, "families": result["matched_loss"]["families"],
    "matched tokens (nats)": effect_cell(result["matched_tokens"]),
    "matched loss (nats)": effect_cell(result["matched_loss"]),
    "token gap at matched loss (×)": effect_cell(result["token_gap"], ".2f"),
} for (method, bits), result in schedule_results.items()])
display(Markdown(f"**Decayed minus constant-rate QiD** (D/N ≥ {MIN_RUNG:g}; mean over WSD families, "
                 "95 % t interval over families):"))
display(schedule_table.style.hide(axis="index"))
main_schedule = schedule_results.get((MAIN_METHOD, 3))
if main_schedule is not None:
    check = main_schedule["interpolation_summary"]
    display(Markdown(
        f"Leave-one-out check of the interpolation ({MAIN_METHOD.upper()} 3 bits: each interior constant-rate "
        f"checkpoint predicted from its neighbours): linear in QiD over-predicts {check['linear']['over_predicted']} "
        f"of {check['linear']['checkpoints']} (mean error {check['linear']['mean_relative_error']:+.0%}); linear in "
        f"log QiD over-predicts {check['log']['over_predicted']} of {check['log']['checkpoints']} (mean error "
        f"{check['log']['mean_relative_error']:+.0%}). " + main_schedule["verdict"]))

# %% tags=["hide-input"]
fig, axes = subplots(2, (len(SIZES) + 1) // 2, figsize=(5, 5.6), sharey=False)
for ax, size in zip(np.atleast_1d(axes).ravel(), SIZES):
    rows = seed0[(seed0["size"] == size) & (seed0["method"] == MAIN_METHOD) & (seed0["bits"] == 3)]
    stable = rows[rows["phase"] == "stable"].sort_values("loss_16")
    decayed = rows[rows["phase"] == "decayed"]
    cos = rows[rows["design"] == "cosine"]
    ax.errorbar(stable["loss_16"], stable["qid"], yerr=stable["qid_se"], fmt="o-", color="#2c3e50", markersize=4,
                label="constant lr")
    ax.errorbar(decayed["loss_16"], decayed["qid"], yerr=decayed["qid_se"], fmt="v", color="#c0392b", markersize=6,
                label="WSD decayed")
    ax.errorbar(cos["loss_16"], cos["qid"], yerr=cos["qid_se"], fmt="x", color="#7f8c8d", markersize=5,
                label="cosine")
    ax.invert_xaxis()
    ax.set_title(f"{size}", fontsize=11)
    ax.set_xlabel("16-bit loss (nats/token)")
for ax in np.atleast_2d(axes)[:, 0]:
    ax.set_ylabel(f"{MAIN_METHOD.upper()} 3-bit QiD (nats/token)")
np.atleast_1d(axes).ravel()[0].legend();
fig_decay = fig

# %% [markdown]
# *Figure: 3-bit QiD against the 16-bit loss (training proceeds to the right), per size: the constant-rate run,
# its decay branches and the cosine checkpoints. A decayed point above the constant-rate line means decay added
# QiD beyond what its loss predicts.*

# %% tags=["remove-cell"]
if main_schedule is not None and main_schedule["matched_loss"]["families"] > 1:
    for name in ("matched_tokens", "matched_loss", "token_gap"):
        summary = main_schedule[name]
        glue(f"schedule_{name}", float(f"{summary['mean']:.4g}"), display=False)
        glue(f"schedule_{name}_interval", [float(f"{summary['low']:.4g}"), float(f"{summary['high']:.4g}")],
             display=False)
    glue("schedule_families", int(main_schedule["matched_loss"]["families"]), display=False)

# %% [markdown]
# ## Is the window sample enough?
#
# QiD is measured on 512 windows of 128 tokens drawn from equal strata of the evaluation split (one window per
# stratum, so every document contributes in proportion to its length). On the final cosine checkpoint of every
# size, the same cells were measured on **every** window of the split:

# %% tags=["remove-input"]
if len(full_split):
    shown_full = pd.DataFrame({
        "size": full_split["size"], "method": full_split["method"], "bits": full_split["bits"],
        f"sample ({int(full_split['windows_sample'].iloc[0])} windows)":
            [f"{q:.4f} ± {e:.4f}" for q, e in zip(full_split["qid_sample"], full_split["qid_sample_se"])],
        f"whole split ({int(full_split['windows_full'].iloc[0])})":
            [f"{q:.4f} ± {e:.4f}" for q, e in zip(full_split["qid_full"], full_split["qid_full_se"])],
        "difference / SE": full_split["difference_in_sample_se"].map("{:+.2f}".format)})
    display(shown_full.style.hide(axis="index"))
    within = float((full_split["difference_in_sample_se"].abs() <= 2).mean())
    glue("full_split_within_2se", within, display=False)
    display(Markdown(f"{within:.0%} of the sample's QiDs lie within 2 of their standard errors of the whole split's."))
else:
    display(Markdown("*The whole-split check is not in these tables (`qid_full_split.csv` was not measured).*"))

# %% [markdown]
# ## Significance at low bits
#
# With every row kept, how many checkpoints are far enough from zero to inform a law? At 2 bits:

# %% tags=["remove-input"]
lines = []
for method in METHODS:
    significant, total = suite_analysis.significant_share(qid_all, method, 2, MIN_RUNG)
    lines.append(f"- {method.upper()}: {significant} of {total} checkpoints with D/N ≥ {MIN_RUNG:g} have a 2-bit QiD "
                 f"above 3 standard errors ({significant / max(total, 1):.0%}).")
    if method == "gptq":
        glue("gptq2_significant_share", significant / max(total, 1), display=False)
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## A live slice: re-creating one checkpoint
#
# The committed tables are only as good as the code that made them. Here the smallest size's cosine run
# (seed 0) is retrained from scratch to its D/N = 20 checkpoint, and a few cells are measured again with the
# suite's own settings; they must match the committed rows.

# %% tags=["hide-input"]
live = pd.DataFrame()
if LIVE_METHODS and LIVE_BITS:
    from qid.suite import measurement as suite_measure
    from qid.measure.sweep import load_results, run_sweep

    torch.set_num_threads(LIVE_THREADS)
    smallest = SIZES[0]
    run_rows = checkpoints[(checkpoints["design"] == "cosine") & (checkpoints["size"] == smallest)
                           & (checkpoints["train_seed"] == 0) & checkpoints["rung"].notna()]
    target = run_rows.iloc[(run_rows["rung"] - 20).abs().argsort().iloc[0]]
    live_dir = Path(LIVE_DIR) / "slice"
    shutil.rmtree(live_dir, ignore_errors=True)
    lrs = {size: float(lr_sweep.loc[(lr_sweep["size"] == size) & lr_sweep["chosen"], "max_lr"].iloc[0])
           if ((lr_sweep["size"] == size) & lr_sweep["chosen"]).any() else preset.max_lr[size] for size in preset.sizes}
    planned = next(run for run in suite.plan_runs(preset, live_dir, designs=("cosine",), sizes=[smallest],
                                                  learning_rates=lrs)
                   if run.config.seed == 0)
    folder = training.train(live_dir / "cosine" / planned.name, planned.config, progress=False,
                            stop_after=int(target["step"]))
    spec = suite_measure.sweep_spec(PRESET, [str(folder)], methods=LIVE_METHODS, bits=LIVE_BITS)
    run_sweep(spec, live_dir / "qid.csv", progress=False, log=lambda message: None)  # its log names scratch paths
    live = load_results(live_dir / "qid.csv")
    committed = qid_all[(qid_all["run"] == target["run"]) & (qid_all["step"] == target["step"])
                        & (qid_all["calib_seed"].isna() | (qid_all["calib_seed"] == 0))]
    comparison = live[["method", "bits", "qid"]].merge(committed[["method", "bits", "qid"]], on=["method", "bits"],
                                                       suffixes=("_live", "_committed"))
    comparison["difference"] = comparison["qid_live"] - comparison["qid_committed"]
    display(comparison.style.hide(axis="index").format({"qid_live": "{:.6g}", "qid_committed": "{:.6g}",
                                                        "difference": "{:.1e}"}))
    glue("live_max_qid_difference", float(comparison["difference"].abs().max()), display=False)

# %% [markdown]
# ## Summary

# %% tags=["remove-input"]
gptq2 = suite_analysis.significant_share(qid_all, "gptq", 2, MIN_RUNG)
main_d = in_d[in_d["method"] == MAIN_METHOD]
main_n = in_n[in_n["method"] == MAIN_METHOD]
low_bits_d = main_d[main_d["bits"] <= 3]
low_bits_n = main_n[main_n["bits"] <= 3]


def share(frame, column, value="yes"):
    return f"{int((frame[column] == value).sum())} of {len(frame)}"


points = [
    f"**Design.** {len(SIZES)} sizes over {decades:.2f} decades of N, crossed with a D/N ladder up to "
    f"{qid_all['tokens_per_parameter'].max():.0f}; {len(checkpoints)} checkpoints, {checkpoints['rung'].notna().sum()} "
    f"on the ladder and measured; {len(qid_all):,} QiD rows (RTN, GPTQ and AWQ at 2/3/4/8 bits, KL and top-1 beside "
    f"each).",
    f"**Trained regime.** {fit_rows['beats_bigram'].mean():.0%} of the checkpoints at D/N ≥ {MIN_RUNG:g} beat the "
    f"bigram ({bigram:.3f} nats/token on the same windows); at {int(ordering['ordered_by_N'].sum())} of "
    f"{len(ordering)} rungs from D/N {MIN_RUNG:g} the annealed loss falls with N.",
    f"**QiD rises with D** ({MAIN_METHOD.upper()}, 2–3 bits, per size, 95 % t interval above zero): "
    f"{share(low_bits_d, 'rises with D')} size × bit-width slopes; opposite: {share(low_bits_d, 'rises with D', 'opposite')}.",
    f"**At fixed D/N QiD rises with N** ({MAIN_METHOD.upper()}, 2–3 bits, per rung: "
    f"{share(low_bits_n, 'rises with N')} rung × bit-width slopes significantly positive), as the "
    f"paper's law predicts when β > α: the larger model has also seen more tokens.",
    f"**At fixed D, QiD falls with N in {negative_share:.0%} of the slopes** (all quantizers, 2–4 bits, "
    f"{len(in_fixed_d)} token counts × quantizer × bits), but only {int((in_fixed_d['falls with N'] == 'yes').sum())} "
    f"of them exclude zero with 3–4 sizes: the sign of α is not resolved at this scale.",
    f"**Signal.** {gptq2[0]} of {gptq2[1]} GPTQ 2-bit checkpoints at D/N ≥ {MIN_RUNG:g} have QiD above 3 standard "
    f"errors.",
]
if main_schedule is not None and main_schedule["matched_loss"]["families"] > 1:
    points.append(
        f"**Decay** ({MAIN_METHOD.upper()}, 3 bits, {main_schedule['matched_loss']['families']} WSD families): "
        f"decayed minus constant-rate QiD at the same tokens {effect_cell(main_schedule['matched_tokens'])} "
        f"nats/token, at the same 16-bit loss {effect_cell(main_schedule['matched_loss'])}, where the constant-rate "
        f"run has seen {effect_cell(main_schedule['token_gap'], '.2f')}× the tokens. {main_schedule['verdict']}")
display(Markdown("\n".join(f"- {point}" for point in points)))
glue("suite_checkpoints", int(len(checkpoints)), display=False)
glue("suite_qid_cells", int(len(qid_all)), display=False)
glue("suite_decades", round(decades, 3), display=False)
glue("suite_designs", sorted(set(checkpoints["design"])), display=False)
glue("suite_rises_with_d", share(low_bits_d, "rises with D"), display=False)
glue("suite_fixed_d_negative_share", negative_share, display=False)

# %% [markdown]
# What to take from it: the reader can check each statement against the tables above, and chapter 5 fits the
# laws to these rows with an error model built from the same three noise components.
#
# ## References
#
# {cite:t}`ouyang2024lowbit`, {cite:t}`kumar2024precision`, {cite:t}`catalan2025dynamics`,
# {cite:t}`biderman2023pythia`, {cite:t}`frantar2022gptq`, {cite:t}`lin2023awq`. Full entries are in the
# bibliography.
