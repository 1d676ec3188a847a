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
# # Measuring QiD: quantizers, paired evaluation and resumable sweeps
#
# ## Overview
#
# Quantization-induced degradation (QiD, written $\Delta_q\mathrm{Loss}$ by {cite:t}`ouyang2024lowbit`) is the
# cross-entropy loss of a weight-quantized model minus that of the same model in 16 bits, on the same held-out
# text. Everything later in the book is fitted to QiD values, so this chapter shows how the book measures one,
# on a model small enough to train on a CPU while the chapter runs (its training time on the build machine is
# printed below):
#
# 1. a checkpoint and its metadata: $N$ (non-embedding parameters, counted from the model) and $D$ (training
#    tokens);
# 2. what is quantized: the `Linear` weights of the transformer blocks, fake-quantized back to the compute
#    precision, with round-to-nearest ({term}`RTN`), {term}`GPTQ` {cite:p}`frantar2022gptq` and {term}`AWQ` {cite:p}`lin2023awq`;
#    the embeddings and the output head stay in 16 bits, as in GPTQ practice and in the paper's checkpoints;
# 3. {term}`paired evaluation <Paired evaluation>`: both models score the same fixed windows of held-out text, and QiD's standard error
#    comes from the per-window differences;
# 4. a sweep over methods × bits, appended cell by cell to a CSV that survives interruptions, and QiD against
#    bits for each method;
# 5. how to run the same measurement on the Pythia checkpoints with a GPU.
#
# ## Prerequisites
#
# - Data: the book's corpus and tokenizer (`data/corpus/`, `data/tokenizer/`; see `data/README.md`). The
#   evaluation text is the corpus's held-out `eval` split; GPTQ and AWQ calibrate on its `calibration` split.
# - Nothing to download and no GPU: the chapter trains its own GPT-NeoX of about 150k non-embedding parameters
#   with `qid.suite.train` and measures it on the CPU in fp32; how long that took, and on which machine, is printed
#   after the training cell.
# - Writes only under `runs/` (gitignored): the small model and the sweep's CSV.

# %% [markdown]
# ## Imports

# %% tags=["hide-input"]
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from myst_nb import glue

from qid.chapters.quiet import quiet_libraries

quiet_libraries()  # no progress bars or library notes in the book (before torchao is imported by transformers)

from qid.measure import checkpoints, evaluate, quantize, ray_sweep, sweep, textsource
from qid.chapters.formatting import format_count, format_number, format_se, format_size, format_value_se, page_table
from qid.chapters.tables import show_long_table
from qid.chapters.params import apply_chapter_parameters
from qid.chapters.plots import bit_color, subplots
from qid.suite.train import train_small_model

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
CHECKPOINTS = []  # model folders or hub ids like EleutherAI/pythia-160m-deduped@step143000; empty: train the small model
TRAIN_STEPS = 300  # optimizer steps of the chapter's small model (16 × 64 tokens each), used when CHECKPOINTS is empty
METHODS = ["rtn", "gptq", "awq"]  # quantizers: rtn, gptq, awq, bnb (NF4), bnb-fp4
BITS = [2, 3, 4, 8]  # weight bit widths, integers from 2 to 16 (16 is the unquantized model)
GROUP_SIZE = -1  # input columns sharing one scale and zero point; -1 means one group per output channel
EVAL_TOKENS = 16_384  # predicted tokens in the evaluation windows
EVAL_SOURCE = "corpus:eval"  # evaluation text: corpus:eval, wikitext2, refinedweb, or a .txt path
CALIBRATION_SAMPLES = 32  # calibration sequences for GPTQ and AWQ (each as long as an evaluation window)
CALIBRATION_SOURCE = "corpus:calibration"  # calibration text, same choices as EVAL_SOURCE
SEED = 0  # seed of the training run, the evaluation windows and the calibration sample
DEVICE = "cpu"  # cpu, cuda or auto
RAY_ADDRESS = None  # None: the sweep runs here; "local", "auto", "HOST:6379" or "ray://HOST:10001": on a Ray cluster
OUTPUT_CSV = "runs/live/02_measure_qid/qid.csv"  # sweep table; rows are appended and finished cells skipped
WORK_DIR = "runs/live/02_measure_qid"  # scratch folder for the small model (gitignored)
BENCHMARK_DIR = "data/benchmarks"  # committed benchmark tables shown in "Cost and correctness of the engine"

# %% tags=["remove-cell"]
apply_chapter_parameters("02_measure_qid", globals())  # coerce papermill's text ("[2, 8]") and check every value

# %% [markdown]
# ## The checkpoint and its metadata
#
# With no checkpoint given, the chapter trains the smallest mini-Pythia model (2 layers, $d_\mathrm{model}=64$,
# the book's 4,096-token vocabulary) on the corpus's training split with `qid.suite.train.train_small_model`. Its
# folder holds a Hugging Face checkpoint plus the run's metadata, from which $D$ is read; $N$ is always
# counted from the loaded model: every parameter except the token embeddings and the output head, which for
# GPT-NeoX is $N = L(12d^2 + 13d) + 2d$.

# %%
training_seconds = None
if CHECKPOINTS:
    checkpoint_list = list(CHECKPOINTS)
else:
    started = time.perf_counter()
    folder = train_small_model(Path(WORK_DIR) / f"small-0.1m-{TRAIN_STEPS}steps-seed{SEED}", steps=TRAIN_STEPS,
                               size="0.1m", batch_size=16, seq_len=64, max_lr=5e-3, seed=SEED, device=DEVICE)
    checkpoint_list = [str(folder)]
    training_seconds = time.perf_counter() - started

device = torch.device(DEVICE if DEVICE != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
model, tokenizer, info = checkpoints.load_checkpoint(checkpoint_list[0], device=device,
                                                    dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)

# %% tags=["hide-input"]
BUILD_MACHINE = f"{platform.machine()} CPU, {os.cpu_count()} cores visible, torch {torch.__version__}"
if training_seconds is not None:
    display(Markdown(f"Trained {TRAIN_STEPS} steps in **{training_seconds:.0f} s** on the machine that built this "
                     f"page ({BUILD_MACHINE}; shared with other jobs, so a quiet machine is faster)."))
page_table(pd.DataFrame([{"checkpoint": Path(info.checkpoint).name, "family": info.family, "step": info.step,
                          "N (non-embedding)": info.N, "total parameters": info.total_parameters,
                          "D (tokens)": info.D, "context (tokens)": info.context_length}]),
           formats={"N (non-embedding)": format_count, "total parameters": format_count, "D (tokens)": format_count})

# %% [markdown]
# ## What gets quantized
#
# Only the `nn.Linear` layers inside the transformer blocks: for GPT-NeoX the fused query-key-value
# projection, the attention output, and the two MLP matrices of every block. The token embeddings and the
# output head (`lm_head`) stay in 16 bits, as in GPTQ practice. At this size the vocabulary layers hold most of
# the parameters, which is one reason QiD of tiny models is small.

# %% tags=["hide-input"]
linears = quantize.quantizable_linears(model)
quantized_weights = sum(module.weight.numel() for module in linears.values())
page_table(pd.DataFrame([{"layer": name, "shape (out × in)": " × ".join(map(str, module.weight.shape))}
                        for name, module in linears.items()]))

# %% tags=["hide-input"]
display(Markdown(
    f"{len(linears)} weight matrices, {quantized_weights:,} weights: "
    f"{quantized_weights / info.total_parameters:.0%} of all parameters and "
    f"{quantized_weights / info.N:.0%} of the non-embedding ones (the rest are biases and layer norms)."
))

# %% [markdown]
# The quantizers, all weight-only and asymmetric by default, with `GROUP_SIZE` input columns per scale and
# integer zero point:
#
# - **RTN** rounds every weight to the nearest point of its group's uniform grid of $2^b$ levels.
# - **GPTQ** quantizes one input column at a time and pushes the rounding error onto the columns not yet
#   quantized, weighted by the inverse Hessian $H = 2XX^\top$ of the layer's calibration inputs (1 % dampening,
#   Cholesky factor, blocks of 128 columns). It works block by block: each transformer block is calibrated on
#   the outputs of the already-quantized blocks before it, so only one block's activations are held at a time.
# - **AWQ** scales each input channel by $s = \overline{|x|}^{\,\alpha}$ before RTN and back after, with
#   $\alpha$ chosen on the calibration inputs to minimise the layer's output error.
# - **bitsandbytes** NF4/FP4 (`bnb`, `bnb-fp4`) where that library runs; elsewhere its cells are skipped with
#   a message.

# %% [markdown]
# ## Paired evaluation
#
# The evaluation text is cut into windows as long as the model's context; a seeded sample of windows covering
# `EVAL_TOKENS` predicted tokens is fixed once per checkpoint. Both models score the same windows, and QiD is
# the mean of the per-window loss differences. The windows differ in difficulty far more than the two models
# differ from each other, and pairing cancels that: below, the 16-bit model and the lowest-bit model of the first
# method on each window.

# %%
eval_window = min(info.context_length or 2048, 2048)
windows = evaluate.evaluation_windows(textsource.token_stream(EVAL_SOURCE, tokenizer), eval_window, EVAL_TOKENS, SEED)
calibration = textsource.sample_calibration(textsource.token_stream(CALIBRATION_SOURCE, tokenizer, role="calibration"),
                                            CALIBRATION_SAMPLES, eval_window, SEED)
losses_16 = evaluate.window_losses(model, windows, batch_size=16)
example_method, example_bits = METHODS[0], min(BITS)
snapshot = quantize.snapshot_weights(model)
quantize.quantize_model(model, example_method, example_bits, GROUP_SIZE, calibration)
losses_q = evaluate.window_losses(model, windows, batch_size=16)
quantize.restore_weights(model, snapshot)
example = evaluate.paired_qid(losses_16, losses_q, tokens_per_window=eval_window - 1)
unpaired_se = math.sqrt(float(losses_16.var()) / len(losses_16) + float(losses_q.var()) / len(losses_q))

# %% tags=["hide-input"]
fig, ax = subplots(figsize=(5.0, 3.6))
ax.scatter(losses_16, losses_q, s=10, alpha=0.6)
limits = [float(min(losses_16.min(), losses_q.min())), float(max(losses_16.max(), losses_q.max()))]
ax.plot(limits, limits, color="0.5", lw=1)
ax.set_xlabel("16-bit loss of a window (nats/token)")
ax.set_ylabel(f"{example_method} {example_bits}-bit loss (nats/token)")
plt.show()

# %% [markdown]
# *Each dot is one evaluation window, scored by the 16-bit model (x) and the quantized model (y); the grey line
# is equality. The windows spread along the line far more than they stray from it.*

# %% tags=["hide-input"]
fig, ax = subplots(figsize=(5.0, 3.0))
ax.hist((losses_q - losses_16).numpy(), bins=30, color=bit_color(example_bits))
ax.axvline(example.qid, color="k", lw=1)
ax.set_xlabel("per-window loss difference, quantized − 16-bit (nats/token)")
ax.set_ylabel("windows (count)")
plt.show()

# %% [markdown]
# *The per-window differences; the vertical line is their mean, the QiD.*

# %% tags=["hide-input"]
display(Markdown(
    f"On {example.windows} windows ({example.eval_tokens:,} predicted tokens), {example_method} at {example_bits} bits: "
    f"QiD = {format_value_se(example.qid, example.qid_se)} nats (paired SE). Treating the two losses as independent "
    f"samples would give an SE of {format_se(unpaired_se)}, {unpaired_se / example.qid_se:.0f}× larger."
))
glue("measure_paired_se_gain", float(unpaired_se / example.qid_se), display=False)
glue("measure_example_qid", float(example.qid), display=False)
glue("measure_example_qid_se", float(example.qid_se), display=False)
glue("measure_example_method", str(example_method), display=False)
glue("measure_example_bits", int(example_bits), display=False)

# %% [markdown]
# ## The sweep
#
# `qid.measure.sweep.run_sweep` runs checkpoints × methods × bits × group sizes cell by cell. The 16-bit losses are
# computed once per checkpoint; each cell restores the 16-bit weights, quantizes, evaluates, and appends one row
# to the CSV at once under a file lock. Rerunning the chapter (or `qid measure` with the same settings) skips
# every finished cell, so an interrupted sweep resumes where it stopped; `--shard i/n` splits a sweep between
# processes or machines that write to the same table.

# %%
del model
spec = sweep.SweepSpec(
    checkpoints=checkpoint_list, methods=METHODS, bits=sorted(set(BITS) | {16}), group_sizes=[GROUP_SIZE],
    eval_tokens=EVAL_TOKENS, eval_source=EVAL_SOURCE, calibration_samples=CALIBRATION_SAMPLES,
    calibration_source=CALIBRATION_SOURCE, seed=SEED, device=DEVICE, batch_size=16,
)
summary = sweep.run_sweep(spec, OUTPUT_CSV, progress=False, log=lambda message: None, ray=RAY_ADDRESS)
results = ray_sweep.results_for(spec, OUTPUT_CSV) if RAY_ADDRESS else sweep.results_for(spec, OUTPUT_CSV)

# %% tags=["hide-input"]
display(Markdown(f"{summary['written']} cell(s) measured now, {summary['already_done']} found already in `{OUTPUT_CSV}`"
                 + (f", {len(summary['skipped'])} skipped ({summary['skipped'][0][1]})" if summary["skipped"] else "") + "."))
columns = ["method", "bits", "qid", "qid_se", "loss_16", "loss_q", "seconds"]
four_digits = lambda value: format_number(value, digits=4)  # the losses: enough digits to see QiD in them
page_table(results.sort_values(["method", "bits"])[columns], se_columns={"qid": "qid_se"},
           formats={"loss_16": four_digits, "loss_q": four_digits, "seconds": lambda value: format_number(value, digits=2)})

# %% [markdown]
# The 16-bit rows are the check of the machinery: the "quantized" model is the 16-bit one, so its QiD and
# standard error are exactly zero (any pairing or determinism bug would show here).

# %% [markdown]
# ## QiD against bits

# %% tags=["hide-input"]
measured = results[results["bits"] < 16]
fig, ax = subplots()
methods_present = [method for method in METHODS if method in set(measured["method"])]
bit_positions = {bits: index for index, bits in enumerate(sorted(set(measured["bits"])))}
for offset, method in zip(np.linspace(-0.15, 0.15, max(len(methods_present), 1)), methods_present):
    rows = measured[measured["method"] == method].sort_values("bits")
    ax.errorbar([bit_positions[b] + offset for b in rows["bits"]], rows["qid"], yerr=rows["qid_se"],
                marker="o", capsize=3, label=method)
ax.axhline(0, color="0.5", lw=1)
ax.set_yscale("symlog", linthresh=1e-4)
ax.set_xticks(list(bit_positions.values()), [str(b) for b in bit_positions])
ax.set_xlabel("weight bits")
ax.set_ylabel("QiD (nats/token)")
ax.legend(title="method")
plt.show()

# %% [markdown]
# *QiD of each method at each bit width, with ±1 standard error from the per-window differences. The y axis is
# linear within ±10⁻⁴ and logarithmic beyond, so the large 2-bit values and the near-zero 8-bit values fit on
# one figure.*

# %% [markdown]
# ## Rerunning on Pythia with a GPU
#
# The same code measures the paper's models. On a machine with a GPU and access to the Hugging Face hub, the
# checkpoints are named by hub id and revision, $D$ comes from the step (one Pythia step is
# 1024 × 2048 = 2,097,152 tokens) and evaluation runs under bf16 autocast. From the command line:
#
# ```bash
# qid measure --checkpoints EleutherAI/pythia-160m-deduped@step143000 EleutherAI/pythia-160m-deduped@step36000 \
#     --methods rtn gptq --bits 2 3 4 8 --group-size 128 \
#     --eval-source refinedweb --calibration-source wikitext2 --eval-tokens 1000000 --calibration-samples 128 \
#     --device cuda --output data/qid_pythia.csv --shard 1/4     # and 2/4, 3/4, 4/4 on other GPUs
# ```
#
# or with the same keys in a YAML file (`qid measure --config pythia.yaml --output ...`):
#
# ```yaml
# checkpoints:
#   - EleutherAI/pythia-160m-deduped@step143000
#   - {model: EleutherAI/pythia-1b-deduped, revision: step71000}
# methods: [rtn, gptq, awq]
# bits: [2, 3, 4, 8]
# group_sizes: [128]
# eval_source: refinedweb
# calibration_source: wikitext2
# eval_tokens: 1000000
# calibration_samples: 128
# device: cuda
# ```
#
# This chapter itself runs unchanged with `CHECKPOINTS` set to such hub ids and `DEVICE = "cuda"`. Windows
# are then 2,048 tokens (Pythia's context). `benchmarks/bench_measure.py` records the evaluation throughput
# and GPTQ time on Pythia-160M- and 1B-shaped models (`data/benchmarks/`).

# %% [markdown]
# ## Cost and correctness of the engine
#
# `benchmarks/bench_measure.py` (not a timed test) records what a measurement costs and checks our GPTQ against
# a reference implementation, llmcompressor's, on the same trained model, calibration sample and evaluation
# windows. The tables below are the committed results, each row with its machine, versions and commit in
# `data/README.md`'s columns.

# %% tags=["hide-input"]
benchmark_dir = Path(BENCHMARK_DIR)
throughput_columns = ["model", "device", "N", "eval_tokens", "tokens_per_second", "achieved_tflops", "fraction_of_peak",
                      "eval_peak_memory_mb", "gptq_seconds", "gptq_peak_memory_mb"]
for name, label in (("measure_throughput.csv", "CPU"), ("measure_throughput_cuda.csv", "GPU")):
    path = benchmark_dir / name
    if path.exists():
        table = pd.read_csv(path)
        display(Markdown(f"**Evaluation throughput and GPTQ cost, {label}** (`{path}`; {table['machine'].iloc[0]}, "
                         f"{table['date'].iloc[0][:10]}; GPTQ at 4 bits, groups of 128):"))
        summary = table[[column for column in ("model", "device", "N", "tokens_per_second", "gptq_seconds")
                         if column in table.columns]]
        show_long_table(page_table(summary, formats={"N": format_size}),
                        table[[column for column in throughput_columns if column in table.columns]], path.name)
    else:
        display(Markdown(f"**{label}:** `{path}` does not exist: the {label} benchmark has not been run "
                         + ("(no GPU was available to the sessions that built this book; "
                            "`bash benchmarks/gpu_campaign.sh run OUT_DIR` produces it on one)." if label == "GPU" else ".")))

# %% tags=["hide-input"]
reference_path = benchmark_dir / "gptq_reference.csv"
if reference_path.exists():
    reference = pd.read_csv(reference_path)
    agree = int(reference["within_se"].astype(str).str.lower().eq("true").sum())
    show_long_table(page_table(reference[["bits", "act_order", "qid_ours", "qid_reference", "difference", "within_se"]]),
                    reference, reference_path.name)
    display(Markdown(f"Our GPTQ and llmcompressor's agree within a standard error in **{agree} of {len(reference)}** "
                     f"settings ({', '.join(sorted(set(reference['reference_versions'].astype(str))))})."))
else:
    display(Markdown(f"`{reference_path}` does not exist: the reference comparison has not been run."))

# %% [markdown]
# ## Summary

# %% tags=["hide-input"]
def cell(method, bits):
    row = measured[(measured["method"] == method) & (measured["bits"] == bits)]
    return row.iloc[0] if len(row) else None


lowest = min(b for b in BITS if b < 16) if any(b < 16 for b in BITS) else None
lines = [f"- Checkpoint: N = {format_count(info.N)} non-embedding parameters, D = {format_count(info.D)} training "
         f"tokens; 16-bit loss {format_number(results['loss_16'].iloc[0], digits=4)} nats/token on {int(results['eval_windows'].iloc[0])} windows of {eval_window} tokens."]
if lowest is not None:
    for method in methods_present:
        row = cell(method, lowest)
        if row is not None:
            lines.append(f"- {method} at {lowest} bits: QiD = {format_value_se(row['qid'], row['qid_se'])} nats "
                         f"({row['qid'] / row['qid_se']:.1f} standard errors above zero)." if row["qid_se"] > 0 else
                         f"- {method} at {lowest} bits: QiD = {format_number(row['qid'])} nats.")
    rtn, gptq = cell("rtn", lowest), cell("gptq", lowest)
    glue("measure_lowest_bits", int(lowest), display=False)
    if rtn is not None and gptq is not None:
        glue("measure_rtn_qid", float(rtn["qid"]), display=False)
        glue("measure_gptq_qid", float(gptq["qid"]), display=False)
        glue("measure_rtn_qid_se", float(rtn["qid_se"]), display=False)
        glue("measure_gptq_qid_se", float(gptq["qid_se"]), display=False)
        glue("measure_gptq_rtn_ratio", float(gptq["qid"] / rtn["qid"]) if rtn["qid"] > 0 else None, display=False)
    if rtn is not None and gptq is not None and gptq["qid"] > 2 * gptq["qid_se"]:
        lines.append(f"- At {lowest} bits GPTQ's error feedback cuts RTN's QiD by a factor of {rtn['qid'] / gptq['qid']:.1f}.")
resolved = measured[measured["qid"] > 2 * measured["qid_se"]]
lines.append(f"- {len(resolved)} of {len(measured)} quantized cells have a QiD more than two standard errors above zero; "
             "the others cannot be told apart from no degradation with this many evaluation tokens.")
zero = results[results["bits"] == 16]
if len(zero):
    lines.append(f"- At 16 bits every method gives QiD = {format_number(zero['qid'].abs().max())} exactly, as it must.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## What's next
#
# The next chapter trains a suite of such models at several sizes and training lengths and measures QiD on every
# checkpoint with this engine, which is what the scaling laws are fitted to.
#
# ## References
#
# {cite:t}`ouyang2024lowbit`, {cite:t}`frantar2022gptq`, {cite:t}`lin2023awq`, {cite:t}`biderman2023pythia`.
# Full entries are in the bibliography.
