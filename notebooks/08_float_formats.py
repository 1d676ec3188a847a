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
# # Floating-point and micro-scaled formats: FP4, MXFP4, NVFP4 and FP8
#
# ## Overview
#
# Deployment has moved from integer grids to floating-point and block-scaled formats: FP8 (E4M3), FP4 (E2M1),
# MXFP4 (the OCP Microscaling format: blocks of 32 values sharing a power-of-two E8M0 scale) and NVFP4 (blocks of
# 16 values with an E4M3 scale and one FP32 scale per tensor). {cite:t}`ouyang2024lowbit` study integer GPTQ only
# and {cite:t}`kumar2024precision` leave floating point to future work; {cite:t}`sun2025fpquant` fit a law of
# *training* in floating point. This chapter measures post-training quantization to these formats on the book's
# suite, every format written from its specification and fake-quantized (so it runs on any CPU, no Blackwell GPU
# needed) and checked value for value against PyTorch's float8 casts and torchao's MX/NVFP4 code
# (`tests/test_fpformats.py`). It asks:
#
# - which format loses least at about 4 bits per weight, scales included, as training grows, with intervals;
# - how the formats' QiD grows with D/N beside integer 4-bit at equal storage;
# - the law $\mathrm{QiD} = k\,D^{\beta}/N^{\alpha}$ per format, and whether one law with an effective bit count
#   covers integer and floating-point formats;
# - what Sun et al.'s law prefers, beside our measured ranking;
# - and how a practitioner measures a checkpoint of their own at these formats.
#
# ## Prerequisites
#
# - Chapter 2 (how one QiD is measured: paired windows, standard errors) and chapter 3 (the suite: sizes crossed
#   with a D/N ladder).
# - The suite's formats table `data/suite/<preset>_formats.csv`, written by
#   `qid measure-suite --preset <preset> --formats` from the preset's checkpoints (resumable;
#   `qid.suite.formats`). The book shows the `cpu` suite of chapter 3 (its cosine design: the same checkpoints
#   as chapter 3's tables, measured at every format); with `PRESET = "tiny"` the chapter trains and
#   measures the tiny preset itself (a few minutes on a CPU): a plumbing-scale suite, not evidence.

# %% [markdown]
# ## Imports

# %% tags=["hide-input"]
import contextlib
import io
import shlex
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from qid import cli
from qid.chapters import format_analysis
from qid.chapters.formatting import page_table
from qid.chapters.plots import subplots
from qid.chapters.quiet import quiet_libraries
from qid.laws.fpsplit import split_ranking
from qid.laws.registry import get_law
from qid.measure import sweep
from qid.suite import formats as suite_formats
from qid.suite import run as suite_run
from qid.suite import tables as suite_tables

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without widgets
quiet_libraries()  # torchao's notes about CUDA kernels a CPU build lacks, progress bars

# %% [markdown]
# ## Parameters

# %% tags=["parameters", "remove-cell"]
PRESET = "cpu"  # suite preset with data/suite/<preset>_formats.csv, or "tiny" (trained and measured here if missing)
SUITE_DIR = "data/suite"  # folder of the committed suite tables
CONFIDENCE = 0.95  # level of every interval (fraction)
MIN_RUNG = 20  # D/N from which the rungs are pooled into one comparison per training run
EQUAL_STORAGE_BITS = 4.52  # bits per weight a cell may store (scales included) at equal storage: NVFP4's 4.5 + its tensor scale
BOOTSTRAP_SAMPLES = 200  # bootstrap replicates (whole training runs resampled) of the per-format fits
SEED = 0  # seed of the bootstraps
LIVE_METHODS = ["mxfp4", "nvfp4", "fp4", "fp8", "rtn"]  # the practitioner's `qid measure --methods`; [] skips it
LIVE_EVAL_TOKENS = 4096  # predicted tokens of the practitioner's measurement
LIVE_DIR = "runs/live/08_float_formats"  # scratch folder for the tiny preset and the practitioner's run (gitignored)

# %% tags=["remove-cell"]
from qid.chapters.params import apply_chapter_parameters

apply_chapter_parameters("08_float_formats", globals())
TABLE_PATH = suite_formats.ensure_formats_table(PRESET, SUITE_DIR, LIVE_DIR)
formats, error_summary = format_analysis.with_error_model(pd.read_csv(TABLE_PATH))
four = formats[formats["bits"] == 4]
SIZES = list(dict.fromkeys(formats.sort_values("N")["size"]))
checkpoint_losses = formats.drop_duplicates(["run", "step"])["loss_16"]
n_checkpoints = len(checkpoint_losses)
baselines_path = Path(SUITE_DIR) / f"{PRESET}_baselines.csv"
if baselines_path.is_file():
    baselines = pd.read_csv(baselines_path)
    trigram = float(baselines.query("model == 'trigram' and split_sample == 'eval windows'")["loss"].iloc[0])
    beat_trigram = int((checkpoint_losses < trigram).sum())
else:  # the tiny preset made here: no committed baselines
    trigram, beat_trigram = float("nan"), 0
SCALE_NOTE = (f"**This build shows the `tiny` preset**, made for tests: sizes {', '.join(SIZES)} (N "
              f"{formats['N'].min():,}–{formats['N'].max():,}) trained to D/N ≤ {formats['rung'].max():g} and measured "
              f"on {int(formats['eval_windows'].max())} evaluation windows. It exercises every step of the analysis; its "
              "numbers are not evidence about language models, and the intervals below say how little they pin down. "
              "The book's suite (`qid train-suite`) had no trained ladder when this chapter was written; rerun it with "
              "`-p PRESET <preset>` once `qid measure-suite --preset <preset> --formats` has written that preset's table."
              if PRESET == "tiny" else
              f"The `{PRESET}` suite of chapter 3: sizes {', '.join(SIZES)} (N {formats['N'].min():,}–"
              f"{formats['N'].max():,} non-embedding parameters), design(s) {', '.join(sorted(formats['design'].unique()))}, "
              f"training seed(s) {', '.join(str(s) for s in sorted(formats['train_seed'].unique()))}, D/N "
              f"{formats['rung'].min():g}–{formats['rung'].max():g}, {int(formats['eval_windows'].max())} evaluation "
              f"windows per checkpoint. These models are 10^4–10^5 times smaller than Pythia's, and {beat_trigram} of "
              f"the {n_checkpoints} checkpoints measured here beat the corpus's trigram model ({trigram:.3f} nats on the "
              "same windows; chapter 3): the ranking below is a finding about them, not a forecast for deployed "
              "models.")
glue("formats_preset", PRESET, display=False)
glue("formats_checkpoints", int(formats[["run", "step"]].drop_duplicates().shape[0]), display=False)


def interval_text(low, high, digits=".1e"):
    """'[low, high]', or a note where one checkpoint (or run) leaves no interval."""
    return f"[{low:+{digits}}, {high:+{digits}}]" if np.isfinite(low) and np.isfinite(high) else "(no interval: one checkpoint)"


# %% tags=["remove-input"]
display(Markdown(
    f"The table `{Path(TABLE_PATH).name}` holds {len(formats):,} rows: "
    f"{formats[['run', 'step']].drop_duplicates().shape[0]} checkpoints of preset `{PRESET}` "
    f"(sizes {', '.join(SIZES)}; D/N {formats['rung'].min():g}–{formats['rung'].max():g}) × "
    f"{formats['cell'].nunique()} quantizer cells. " + SCALE_NOTE))

# %% [markdown]
# ## The cells and what each stores
#
# Every checkpoint is quantized at 4 bits with integer RTN and GPTQ and with FP4 (E2M1), each per output channel and
# in groups of 32 input columns; with MXFP4 and NVFP4 at their own blocks, by round-to-nearest and by GPTQ's error
# feedback on the format's grid; and at 8 bits with integer RTN and FP8 (E4M3) as a reference. Each cell is charged
# what a deployment stores (`qid.measure.bitsperweight`): the elements plus every scale and zero point
# (integer: an FP16 scale and a 4-bit zero per group; FP4 and FP8: a 16-bit scale per group; MXFP4: an 8-bit scale
# per 32 values; NVFP4: an 8-bit scale per 16 values and a 32-bit scale per tensor). Per-channel cells cost more on
# short rows: the suite's rows are 32–256 inputs long.

# %% tags=["remove-input"]
storage = (formats.groupby(["bits", "cell"])
           .agg(bits_per_weight=("bits_per_weight", "mean"), low=("bits_per_weight", "min"),
                high=("bits_per_weight", "max"), rows=("qid", "size"))
           .reset_index().sort_values(["bits", "bits_per_weight"]))
storage["bits per weight (range over sizes)"] = [f"{m:.3f} ({lo:.3f}–{hi:.3f})" if hi - lo > 1e-9 else f"{m:.3f}"
                                                 for m, lo, hi in zip(storage["bits_per_weight"], storage["low"], storage["high"])]
display(storage[["bits", "cell", "bits per weight (range over sizes)", "rows"]].style.hide(axis="index"))

# %% [markdown]
# ## Which 4-bit format loses least as training grows
#
# At each rung of the ladder the 4-bit cells are compared on the same checkpoints (every size, design and training
# seed at that rung). The table gives each cell's mean QiD and how much more it loses than the rung's best cell,
# with a t interval over the checkpoints of the paired differences: the spread across checkpoints is the noise of
# this comparison. Entries are in thousandths of a nat per token (10⁻³ nats/token).

# %% tags=["remove-input"]
def milli(value, low, high):
    """'+2.46 [-0.31, +0.80]' in 10⁻³ nats/token; the interval left out where one checkpoint gives none."""
    interval = f" [{low * 1e3:+.2f}, {high * 1e3:+.2f}]" if np.isfinite(low) and np.isfinite(high) else " (one checkpoint)"
    return f"{value * 1e3:+.2f}{interval}"


ranking = format_analysis.ranking_by_rung(formats, bits=4, confidence=CONFIDENCE)
best = format_analysis.winners(ranking)
shown = ranking.assign(**{"excess over best [interval]": [
    "best" if rank == 1 else milli(d, lo, hi)
    for rank, d, lo, hi in zip(ranking["rank"], ranking["minus_best"], ranking["low"], ranking["high"])]})
display(shown.pivot_table(index="cell", columns="rung", values="excess over best [interval]", aggfunc="first")
        .rename(columns=lambda r: f"D/N {r:g}").rename_axis(None, axis=1))
best_text = "; ".join(
    f"D/N {row.rung:g}: **{row.best}** (mean QiD {row.best_qid:.2e}), runner-up {row.runner_up} loses "
    f"{row.runner_up_excess:+.1e} more {interval_text(row.low, row.high)}"
    + (" — separated" if row.separated else " — not separated at this confidence")
    for row in best.itertuples())
top_rung = best.iloc[-1]
glue("formats_best_at_top", top_rung["best"], display=False)
glue("formats_top_rung", float(top_rung["rung"]), display=False)
glue("formats_top_separated", bool(top_rung["separated"]), display=False)
glue("formats_top_runner_up", str(top_rung["runner_up"]), display=False)
glue("formats_top_excess", float(top_rung["runner_up_excess"]), display=False)
glue("formats_top_excess_interval", [float(top_rung["low"]), float(top_rung["high"])], display=False)
display(Markdown(f"With {CONFIDENCE:.0%} intervals over {best['checkpoints'].min()}–{best['checkpoints'].max()} "
                 f"checkpoints per rung: {best_text}."))

# %% [markdown]
# ### Pooled from D/N {glue:text}`formats_min_rung` on, one value per training run
#
# One rung holds few checkpoints, so the rungs from `MIN_RUNG` on are pooled. The checkpoints of one training run
# are not independent (same weights, a few hundred steps apart), so each run's QiD per cell is first averaged over
# its checkpoints; the intervals are t intervals over runs (sizes × training seeds) of the paired differences.
# First at equal storage: only the cells that store at most `EQUAL_STORAGE_BITS` bits per weight, scales included
# (NVFP4's 4.5 plus its per-tensor scale, 4.503–4.510 on these small tensors); then every 4-bit cell, whatever it stores (integer g32 pays 0.625 bits per weight for its scales
# and zeros).

# %% tags=["remove-input"]
glue("formats_min_rung", f"{MIN_RUNG:g}", display=False)
glue("formats_equal_storage_bits", f"{EQUAL_STORAGE_BITS:g}", display=False)


def show_pooled(pooled, title):
    """The pooled ranking as a table and one sentence; returns (best row, runner-up row, resolved) or None."""
    if len(pooled) < 2:
        display(Markdown(f"{title}: fewer than two cells measured at every checkpoint from D/N {MIN_RUNG:g} on."))
        return None
    display(pooled.assign(**{
        "excess over best, 10⁻³ nats [interval]": ["best" if rank == 1 else milli(d, lo, hi)
                                        for rank, d, lo, hi in zip(pooled["rank"], pooled["minus_best"], pooled["low"],
                                                                   pooled["high"])],
        "mean QiD": [f"{q:.2e}" for q in pooled["mean_qid"]],
        "bits per weight": [f"{b:.3f}" for b in pooled["bits_per_weight"]]})
        [["rank", "cell", "bits per weight", "mean QiD", "excess over best, 10⁻³ nats [interval]"]]
        .style.hide(axis="index"))
    first, second = pooled.iloc[0], pooled.iloc[1]
    resolved = bool(second["low"] > 0)
    display(Markdown(
        f"{title}, from D/N {MIN_RUNG:g} on ({int(first['checkpoints'])} checkpoints of {int(first['runs'])} training "
        f"runs): **{first['cell']}** loses least (mean QiD {first['mean_qid']:.2e} nats/token at "
        f"{first['bits_per_weight']:.2f} bits per weight); the runner-up {second['cell']} "
        f"({second['bits_per_weight']:.2f} bits per weight) loses {second['minus_best']:+.1e} more "
        f"{interval_text(second['low'], second['high'])}, {'resolved' if resolved else 'not resolved'} at "
        f"{CONFIDENCE:.0%}."))
    return first, second, resolved


pooled = format_analysis.ranking_by_run(formats, bits=4, min_rung=MIN_RUNG, confidence=CONFIDENCE,
                                        max_bits_per_weight=EQUAL_STORAGE_BITS)
equal_storage = show_pooled(pooled, f"At most {EQUAL_STORAGE_BITS:g} bits per weight")
if equal_storage is not None:
    first, second, resolved = equal_storage
    glue("formats_pooled_best", str(first["cell"]), display=False)
    glue("formats_pooled_runs", int(first["runs"]), display=False)
    glue("formats_pooled_runner_up", str(second["cell"]), display=False)
    glue("formats_pooled_excess", float(second["minus_best"]), display=False)
    glue("formats_pooled_excess_interval", [float(second["low"]), float(second["high"])], display=False)
    glue("formats_pooled_separated", resolved, display=False)
pooled_all = format_analysis.ranking_by_run(formats, bits=4, min_rung=MIN_RUNG, confidence=CONFIDENCE)
every_cell = show_pooled(pooled_all, "Every 4-bit cell")
if every_cell is not None:
    glue("formats_all_best", str(every_cell[0]["cell"]), display=False)
    glue("formats_all_best_bits", float(every_cell[0]["bits_per_weight"]), display=False)

# %% [markdown]
# ## QiD against D/N beside integer 4-bit
#
# The round-to-nearest cells at about 4 bits per weight and their GPTQ counterparts, one panel per size (cosine
# checkpoints of training seed 0 and their ±1 standard error over the evaluation windows; QiD in nats per token).
# The y axis is symmetric-logarithmic: QiD near zero can be negative.

# %% tags=["hide-input"]
SHOWN_CELLS = ["INT4 RTN per channel", "FP4 (E2M1) per channel", "MXFP4", "NVFP4", "INT4 GPTQ per channel",
               "MXFP4 GPTQ", "NVFP4 GPTQ"]
palette = dict(zip(SHOWN_CELLS, ["#444444", "#1b9e77", "#d95f02", "#7570b3", "#999999", "#fdae61", "#a6a6e6"]))
cosine = four[(four["design"] == "cosine") & (four["train_seed"] == 0)]
columns = min(2, len(SIZES))
panel_rows = -(-len(SIZES) // columns)
fig, axes = subplots(panel_rows, columns, figsize=(5, 2.4 * panel_rows + 1.4), sharey=True, sharex=True,
                     squeeze=False)
for ax in axes.flat[len(SIZES):]:
    ax.set_visible(False)
for ax, size in zip(axes.flat, SIZES):
    for cell in SHOWN_CELLS:
        rows = cosine[(cosine["size"] == size) & (cosine["cell"] == cell)].sort_values("tokens_per_parameter")
        if rows.empty:
            continue
        ax.errorbar(rows["tokens_per_parameter"], rows["qid"], yerr=rows["qid_se"], fmt="o-" if "GPTQ" not in cell else "s--",
                    markersize=4, capsize=2, color=palette[cell], label=cell)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_title(f"{size} (N = {int(four.loc[four['size'] == size, 'N'].iloc[0]):,})", fontsize=10)
for ax in axes[-1]:
    ax.set_xlabel("D/N")
for ax in axes[:, 0]:
    ax.set_ylabel("QiD at 4 bits")
handles, labels = axes.flat[0].get_legend_handles_labels()
legend = fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=10)  # assigned: no repr
fig_dn = fig

# %% [markdown]
# *Figure: QiD of the 4-bit cells against D/N, one panel per model size (solid: round-to-nearest; dashed: GPTQ).*
#
# ## One law per format
#
# Each cell's QiD is fitted with the per-bit law of {cite:t}`ouyang2024lowbit`,
# $\mathrm{QiD} = k\,D^{\beta}/N^{\alpha}$, on every checkpoint measured, in linear space with each residual
# divided by its total standard error under the book's error model (chapter 5: the window error, plus the
# training-seed variance a² + (r·QiD)² fitted per cell from the two seeds' paired checkpoints; the formats were
# measured with one calibration sample, so no calibration component is added to the GPTQ cells), so zero and
# negative QiD stay in; the intervals bootstrap whole training runs ({glue:text}`formats_bootstrap` replicates). A
# fit whose parameters the data do not identify is marked so; its numbers are not a result.

# %% tags=["remove-input"]
LAW_CELLS = [cell for cell in ["INT4 RTN per channel", "INT4 GPTQ per channel", "FP4 (E2M1) per channel",
                               "FP4 (E2M1) g32", "MXFP4", "NVFP4", "MXFP4 GPTQ", "NVFP4 GPTQ"]
             if cell in set(four["cell"])]
laws = format_analysis.per_format_laws(four, LAW_CELLS, BOOTSTRAP_SAMPLES, SEED, CONFIDENCE)
glue("formats_bootstrap", BOOTSTRAP_SAMPLES, display=False)
law_table = laws.assign(estimate=[
    "—" if not np.isfinite(v) else (f"{v:.3g} [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else f"{v:.3g}")
    for v, lo, hi in zip(laws["value"], laws["low"], laws["high"])])
law_wide = law_table.pivot_table(index="cell", columns="parameter", values="estimate", aggfunc="first")
law_wide["identified"] = laws.groupby("cell")["identified"].first()
law_wide["rows"] = laws.groupby("cell")["rows"].first()
display(law_wide.reindex(LAW_CELLS)[["alpha", "beta", "k", "identified", "rows"]].rename_axis(None, axis=1))
identified = int(laws.groupby("cell")["identified"].first().sum())
glue("formats_laws_identified", identified, display=False)
published = get_law("ouyang_unified").parameter_sets["published"].values
training_groups = error_summary["training"]
seed_pairs_text = (
    f"The training-seed component rests on "
    + (f"{int(training_groups['pairs'].min())}" if training_groups["pairs"].nunique() == 1 else
       f"{int(training_groups['pairs'].min())}–{int(training_groups['pairs'].max())}")
    + f" seed pairs per cell, and is up to {float(np.sqrt(four['var_training'] / four['var_window']).max()):.1f}× "
    "the window error." if len(training_groups) else
    "No checkpoint was measured with both training seeds: the training-seed component is missing from these errors.")
display(Markdown(
    f"{identified} of {len(LAW_CELLS)} cells give an identified fit. {seed_pairs_text} For reference, the published "
    f"GPTQ exponents on Pythia are α = {published['alpha']}, β = {published['beta']}."))

# %% [markdown]
# ### Do the per-format laws predict checkpoints they were not fitted to?
#
# Each cell's law is fitted again without the largest size and without each size's largest D/N rung, and asked
# for those rows: extrapolation in N and in D, the use a scaling law is for. The table gives the root-mean-square
# error in the same total standard errors the fits divide by (near 1 when law and error model both hold), for all
# held-out rows and for each group, beside the naive prediction that copies the nearest kept checkpoint.

# %% tags=["remove-input"]
holdout = format_analysis.per_format_holdout(four, LAW_CELLS, SEED)
holdout_columns = {"cell": "cell", "rms_z": "RMS z", "rms_z_largest_N": "largest N", "rms_z_top_rung": "top D/N",
                   "rms_z_naive": "naive", "rms_nats": "RMS error (nats)", "relative_bias": "relative bias"}
display(page_table(holdout[list(holdout_columns)], formats={
    "rms_z": lambda v: f"{v:.2f}", "rms_z_largest_N": lambda v: f"{v:.2f}", "rms_z_top_rung": lambda v: f"{v:.2f}",
    "rms_z_naive": lambda v: f"{v:.2f}", "rms_nats": lambda v: f"{v:.1e}", "relative_bias": lambda v: f"{v:+.0%}"},
    rename=holdout_columns))
holdout_z = holdout["rms_z"].dropna()
glue("formats_holdout_rms_z_range", [float(holdout_z.min()), float(holdout_z.max())] if len(holdout_z) else [],
     display=False)
if len(holdout_z):
    worst = holdout.loc[holdout["rms_z"].idxmax()]
    display(Markdown(
        f"Each law was fitted on {int(holdout['n_train'].max())} rows and scored on {int(holdout['n_test'].max())} "
        f"({int(holdout['identified'].sum())} of {len(holdout)} training fits identified); the RMS z columns are "
        "over all held-out rows, the largest size's and the top rungs', and for the naive prediction; the relative "
        "bias is the mean prediction over the mean measurement, minus 1. "
        f"The law beats the naive prediction in {int((holdout['rms_z'] < holdout['rms_z_naive']).sum())} of "
        f"{len(holdout_z)} cells. "
        f"RMS z on held-out rows runs from {holdout_z.min():.2f} to {holdout_z.max():.2f} "
        f"(worst: {worst['cell']}); {int((holdout_z <= 1.5).sum())} of {len(holdout_z)} cells stay within 1.5, and "
        f"the largest D/N rungs are missed by more than the largest size "
        f"({int((holdout['rms_z_top_rung'] > holdout['rms_z_largest_N']).sum())} of {len(holdout_z)} cells). "
        + ("The per-format laws describe the rows they were fitted to, but they do not extrapolate within their "
           "errors at this scale: their exponents above summarise this ladder; they are not laws to project with."
           if holdout_z.max() > 1.5 else "The per-format laws extrapolate within their errors on this ladder.")))

# %% [markdown]
# ## One law with an effective bit count?
#
# If a format's QiD were that of an integer grid with the same storage, one law
# $\mathrm{QiD} = k\,D^{\beta}/(N^{\alpha}P^{\gamma})$ with $P$ = bits per weight would cover integer and
# floating-point formats alike. The law is fitted on the integer RTN rows (4 and 8 bits, per channel and g32, so P
# spans 4.08–8.63), then each round-to-nearest floating-point 4-bit cell is compared with what it predicts at that
# cell's storage: the ratio of summed measured to summed predicted QiD, and the effective bit count $P_\mathrm{eff}$
# at which the integer law gives the cell's QiD, with intervals from resampling whole training runs. A ratio
# whose interval contains 1 (equivalently $P_\mathrm{eff}$ containing the storage bits) means the integer law
# with the storage bits covers that format here.

# %% tags=["remove-input"]
integer_law, effective = format_analysis.effective_bits(formats, BOOTSTRAP_SAMPLES, SEED, CONFIDENCE)
if integer_law is None:
    display(Markdown("**Not determined here**: the integer rows cover fewer than two model sizes or token counts, "
                     "which cannot fit the law."))
else:
    display(Markdown(
        f"Integer RTN law: k = {integer_law.params['k']:.3g}, α = {integer_law.params['alpha']:.3g}, "
        f"β = {integer_law.params['beta']:.3g}, γ = {integer_law.params['gamma']:.3g} "
        f"({'identified' if integer_law.identified else 'NOT identified: ' + '; '.join(integer_law.identification or [])}, "
        f"{integer_law.n_points} rows)."))
effective_shown = effective.assign(**{
    "measured / integer law [interval]": [f"{r:.2f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in
                                          zip(effective["ratio"], effective["ratio_low"], effective["ratio_high"])],
    "P_eff [interval]": [f"{p:.2f} [{lo:.2f}, {hi:.2f}]" for p, lo, hi in
                         zip(effective["effective_bits"], effective["bits_low"], effective["bits_high"])],
    "covered": (effective["ratio_low"] <= 1) & (effective["ratio_high"] >= 1)})
display(effective_shown.assign(**{"bits per weight": [f"{b:.3f}" for b in effective_shown["bits_per_weight"]]})
        [["cell", "bits per weight", "measured / integer law [interval]", "P_eff [interval]", "covered", "rows"]]
        .style.hide(axis="index"))
covered = int(effective_shown["covered"].sum())
glue("formats_covered", covered, display=False)
glue("formats_covered_of", int(len(effective_shown)), display=False)

# %% [markdown]
# ## Sun et al.'s preferred split beside the measured ranking
#
# {cite:t}`sun2025fpquant` fit the loss of models *trained* in floating point,
# $L = n/N^{\alpha} + d/D^{\beta} + \epsilon + (D^{\beta}/N^{\alpha})\,\log_2 B\,/\,(\gamma (E+0.5)^{\delta}(M+0.5)^{\nu})$
# (registered as `sun_fp_training` with their constants). Its precision term ranks the exponent/mantissa splits of a
# bit budget (`qid.laws.fpsplit`) and the block sizes B of the scale. It is a law of quantized training, not of
# post-training quantization, so it is set beside our ranking, not tested by it.

# %% tags=["remove-input"]
splits = pd.concat([split_ranking(bits).assign(bits=bits) for bits in (4, 8)])
display(splits[["bits", "format", "exponent_bits", "mantissa_bits", "relative_penalty"]]
        .style.hide(axis="index").format({"relative_penalty": "{:.2f}"}))
sun = get_law("sun_fp_training").parameter_sets["published"].values
# the block length each E2M1 cell's scale covers: the format's block, or (per channel) the row length implied by
# its storage (4 + 16/row bits per weight): the parameter-weighted harmonic mean of the rows
block = {"MXFP4": 32.0, "NVFP4": 16.0, "FP4 (E2M1) g32": 32.0}
per_channel = four[four["cell"] == "FP4 (E2M1) per channel"]["bits_per_weight"]
if len(per_channel):
    block["FP4 (E2M1) per channel"] = float(16 / (per_channel.mean() - 4))
sun_rank = pd.DataFrame({"cell": list(block), "block B": list(block.values())})
sun_rank["Sun et al. penalty (relative to NVFP4)"] = np.log2(sun_rank["block B"]) / np.log2(16)
# our ranking: the pooled one over every cell (one value per run from MIN_RUNG on) where it exists, else the top rung's
pooled_measure = not pooled_all.empty
measured_rank = (pooled_all.set_index("cell")["mean_qid"] if pooled_measure else
                 ranking[ranking["rung"] == ranking["rung"].max()].set_index("cell")["mean_qid"])
where = f"from D/N {MIN_RUNG:g} on" if pooled_measure else "at the top rung"
measured_column = f"measured mean QiD {where}"
sun_rank[measured_column] = sun_rank["cell"].map(measured_rank)
display(sun_rank.sort_values("block B").style.hide(axis="index").format(precision=3, na_rep="–"))
preferred4 = split_ranking(4).iloc[0]["format"]
glue("formats_sun_preferred_4", preferred4, display=False)
sun_order = list(sun_rank.sort_values("block B")["cell"])
measured_order = list(sun_rank.sort_values(measured_column)["cell"])
display(Markdown(
    f"At 4 bits Sun et al.'s law prefers **{preferred4}**, the element every 4-bit floating-point format here uses, "
    f"so among them it ranks only the scale's block: smaller blocks lose less ({' < '.join(sun_order)}). Our "
    f"measured order {where} (mean QiD, the intervals above say which differences are resolved): "
    f"{' < '.join(measured_order)}; the two orders {'agree' if sun_order == measured_order else 'differ'}. "
    "Sun's law leaves out the scale's own precision (E8M0 powers of two for MXFP4, E4M3 for NVFP4), which the "
    "measured ranking includes."))

# %% [markdown]
# ## The practitioner's path: `qid measure` on a local checkpoint
#
# The same quantizers measure any local Hugging Face checkpoint folder (with its tokenizer). Here the final
# checkpoint of the tiny preset's smallest size (trained here if missing) stands in for the reader's model;
# `--bits 4 8` lets each format take its own width (a format asked at a width it does not have is skipped).

# %% tags=["hide-input"]
if LIVE_METHODS:
    runs = Path(LIVE_DIR) / "runs"
    if not list((runs / "tiny" / "cosine" / "13k-seed0").glob("step-*")):
        suite_run.train_suite("tiny", runs, designs=("cosine",), sizes=("13k",), progress=False,
                              log=lambda message: None, stage="all")
    live_checkpoint = sorted((runs / "tiny" / "cosine" / "13k-seed0").glob("step-*"))[-1]  # its final checkpoint
    live_output = Path(LIVE_DIR) / "formats_measure.csv"
    if live_output.exists():
        live_output.unlink()  # the chapter's own scratch output: measured afresh each run
    arguments = ["measure", "--checkpoints", str(live_checkpoint), "--methods", *LIVE_METHODS, "--bits", "4", "8",
                 "--group-size", "32", "--eval-tokens", str(LIVE_EVAL_TOKENS), "--device", "cpu", "--no-progress",
                 "--output", str(live_output)]
    print("$ qid " + " ".join(shlex.quote(a) for a in arguments))
    log = io.StringIO()
    with contextlib.redirect_stderr(log):  # its log names this machine's scratch folders: only the skips are shown
        status = cli.main(arguments)
    assert status == 0, f"qid measure exited {status}:\n{log.getvalue()}"
    print("\n".join(line for line in log.getvalue().splitlines() if line.startswith("skipped")))
    live = sweep.load_results(live_output).sort_values(["bits", "qid"])
    display(live.assign(**{"bits/weight": live["bits_per_weight"].map("{:.3f}".format),
                           "16-bit loss": live["loss_16"].map("{:.4f}".format),
                           "QiD ± SE": [f"{q:+.1e} ± {s:.1e}" for q, s in zip(live["qid"], live["qid_se"])],
                           "KL": live["kl"].map("{:.1e}".format), "top-1": live["top1_agree"].map("{:.3f}".format)})
            [["method", "bits", "group_size", "bits/weight", "16-bit loss", "QiD ± SE", "KL", "top-1"]]
            .style.hide(axis="index"))

# %% [markdown]
# Each row is one cell: the 16-bit loss and the quantized model's QiD with its standard error over the evaluation
# windows, the KL divergence from the 16-bit model's next-token distribution, the top-1 agreement, and the bits
# per weight the format stores. `qid measure` is resumable (rerun it to go on), `--ray` spreads the cells over a
# cluster, and `--device cuda` runs the same code on a GPU.
#
# ## Summary

# %% tags=["remove-input"]
display(Markdown(
    (f"{SCALE_NOTE}\n\n" if SCALE_NOTE else "")
    + (f"- On preset `{PRESET}`, pooled from D/N {MIN_RUNG:g} on ({int(pooled.iloc[0]['runs'])} training runs) and "
       f"at most {EQUAL_STORAGE_BITS:g} bits per weight, the 4-bit cell that loses least is "
       f"**{pooled.iloc[0]['cell']}**; the runner-up {pooled.iloc[1]['cell']} loses "
       f"{pooled.iloc[1]['minus_best']:+.1e} more {interval_text(pooled.iloc[1]['low'], pooled.iloc[1]['high'])} "
       f"({'resolved' if pooled.iloc[1]['low'] > 0 else 'not resolved'} at {CONFIDENCE:.0%}).\n"
       if len(pooled) > 1 else "")
    + (f"- With no storage limit, {pooled_all.iloc[0]['cell']} ({pooled_all.iloc[0]['bits_per_weight']:.2f} bits per "
       f"weight) loses least.\n" if len(pooled_all) > 1 else "")
    + f"- On preset `{PRESET}` ({formats[['run', 'step']].drop_duplicates().shape[0]} checkpoints), the 4-bit cell "
    f"that loses least at the top rung (D/N {top_rung['rung']:g}) is **{top_rung['best']}**; its lead over "
    f"{top_rung['runner_up']} is {top_rung['runner_up_excess']:+.1e} nats/token "
    f"{interval_text(top_rung['low'], top_rung['high'])} ({'resolved' if top_rung['separated'] else 'not resolved'} "
    f"at {CONFIDENCE:.0%}).\n"
    f"- Per-format laws: {identified} of {len(LAW_CELLS)} cells give an identified fit of k·D^β/N^α"
    + (f"; on held-out rows (largest N, largest D/N) their RMS z runs from {holdout_z.min():.2f} to "
       f"{holdout_z.max():.2f}.\n" if len(holdout_z) else ".\n")
    + (f"- One law with P = bits per weight, fitted on integer RTN, covers {covered} of {len(effective_shown)} "
       "round-to-nearest floating-point 4-bit cells within the interval.\n" if integer_law is not None else
       "- One law with an effective bit count: not determined (the rows cover fewer than two sizes or token counts).\n")
    + f"- Sun et al.'s law prefers {preferred4} at 4 bits and smaller scale blocks; the measured order of the E2M1 "
    f"formats' mean QiD {where} {'agrees' if sun_order == measured_order else 'differs'} (an order of means: the "
    "intervals above say which of its steps are resolved)."))

# %% [markdown]
# ## References
#
# {cite:t}`sun2025fpquant`, {cite:t}`ouyang2024lowbit`, {cite:t}`kumar2024precision`, {cite:t}`frantar2022gptq`.
# The formats' specifications: the OCP 8-bit Floating Point Specification (OFP8) rev. 1.0 and the OCP Microscaling
# Formats (MX) v1.0 specification; NVFP4 as NVIDIA describes it for Blackwell and as torchao implements it
# (`qid/measure/blockformats.py` says which rule each step follows). Full entries are in the bibliography.
