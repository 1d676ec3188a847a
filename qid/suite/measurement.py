"""Measuring the suite: QiD, KL and top-1 agreement of every checkpoint on the ladder, three calibration seeds on a
subset, and the whole-split check of the window sample.

Three resumable sweeps (`qid.measure.sweep`), each into its own raw table under runs/suite/<preset>/:

* ``qid_sweep.csv`` — every checkpoint on the ladder × RTN/GPTQ/AWQ × bits, calibration seed 0; the same file
  also takes calibration seeds 1 and 2 of GPTQ/AWQ on the calibration checkpoints (`calibration_checkpoints`),
  so the calibration component of the variance is estimated at every size and bit width. Per-window losses go
  to ``window_losses.jsonl``.
* ``qid_full_split.csv`` — a few final checkpoints measured on every window of the eval split, to show that the
  stratified sample's QiD agrees with the whole split's within its standard error.

Settings that move results (batch size, threads) are fixed by the preset and recorded in every row. Where the raw
files live, and how they become the tidy tables, is `qid.suite.tables`'s job.
"""

from __future__ import annotations

from pathlib import Path

from qid.suite import plan as suite
from qid.suite.tables import (checkpoint_path, collect_checkpoints, full_split_output, measured_checkpoints,
                              sweep_output, window_losses_output)

FULL_SPLIT_METHODS = ("rtn", "gptq")
FULL_SPLIT_BITS = (2, 3)


def sweep_spec(preset: str, checkpoints, device: str = "cpu", calibration_seeds=(0,), eval_tokens: int | None = None,
               methods=None, bits=None, kl: bool = True):
    """The preset's measurement settings as a qid.measure.sweep.SweepSpec over the given checkpoint folders."""
    from qid.measure.sweep import SweepSpec

    spec = suite.get_preset(preset)
    return SweepSpec(
        checkpoints=[str(c) for c in checkpoints], methods=list(methods or spec.qid_methods),
        bits=list(bits or spec.qid_bits), group_sizes=[spec.qid_group_size],
        eval_tokens=eval_tokens or spec.qid_eval_windows * (spec.seq_len - 1), eval_window=spec.seq_len,
        eval_source="corpus:eval", calibration_samples=spec.qid_calibration_samples,
        calibration_length=spec.seq_len, calibration_source="corpus:calibration", seed=0,
        calibration_seeds=list(calibration_seeds), device=device, batch_size=spec.qid_batch_size, kl=kl)


def calibration_checkpoints(checkpoints) -> list[str]:
    """Per size: the cosine seed-0 checkpoints at D/N 20 and at the size's largest rung, and the WSD decayed
    checkpoint at the largest rung — three checkpoints per size for the calibration-seed repeats."""
    chosen = []
    for size, group in checkpoints.groupby("size", sort=False):
        top = group["rung"].max()
        picks = group[((group["design"] == "cosine") & (group["train_seed"] == 0) & group["rung"].isin([20, top]))
                      | ((group["phase"] == "decayed") & (group["rung"] == top) & (group["train_seed"] == 0))]
        chosen.extend(picks["checkpoint"])
    return [checkpoint_path(c) for c in dict.fromkeys(chosen)]


def full_split_checkpoints(checkpoints) -> list[str]:
    """The cosine seed-0 final checkpoint of every size."""
    final = checkpoints[(checkpoints["phase"] == "final") & (checkpoints["train_seed"] == 0)]
    return [checkpoint_path(c) for c in final["checkpoint"]]


def _mine(items: list[str], costs: list[float], shard) -> list[str]:
    """The items of shard i/n, balanced by cost (`qid.suite.plan.balance`), in their original order."""
    if shard is None:
        return items
    index, count = shard
    return [item for item, worker in zip(items, suite.balance(costs, count)) if worker == index - 1]


def measure_suite(preset: str = "cpu", runs_dir=suite.DEFAULT_RUNS_DIR, device: str = "cpu", shard=None,
                  progress: bool = True, full_split: bool = True, ray: str | None = None) -> Path:
    """Run the suite's three sweeps for one shard (by checkpoint, balanced by model cost); resumable.
    `ray` ('local' or an address): each checkpoint's cells run as Ray tasks (`qid.measure.ray_sweep`)."""
    from qid.measure.sweep import parse_shard, run_sweep

    shard = parse_shard(shard) if isinstance(shard, str) else shard
    table = measured_checkpoints(collect_checkpoints(preset, runs_dir))
    output, windows = sweep_output(preset, runs_dir), window_losses_output(preset, runs_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    every = [checkpoint_path(c) for c in table["checkpoint"]]
    cost = dict(zip(every, (suite.cost_per_token(size) for size in table["size"])))
    calibration = calibration_checkpoints(table)
    full = full_split_checkpoints(table)
    jobs = [("main", c) for c in every] + [("calibration", c) for c in calibration]
    jobs += [("full", c) for c in full] if full_split else []
    weights = {"main": 1.0, "calibration": 1.4, "full": 4.0}
    if ray is not None:  # the cluster schedules the checkpoints itself: one sweep per kind, every checkpoint at once
        seeds = suite.get_preset(preset).qid_calibration_seeds
        run_sweep(sweep_spec(preset, every, device), output, progress=progress, ray=ray)
        run_sweep(sweep_spec(preset, calibration, device, calibration_seeds=seeds), output, progress=progress, ray=ray)
        if full_split:
            for checkpoint in full:
                run_sweep(full_split_spec(preset, checkpoint, device), full_split_output(preset, runs_dir),
                          progress=progress, ray=ray)
        return output
    labels = [f"{kind}|{checkpoint}" for kind, checkpoint in jobs]
    mine = set(_mine(labels, [weights[k] * cost[c] for k, c in jobs], shard))
    for kind, checkpoint in jobs:
        if f"{kind}|{checkpoint}" not in mine:
            continue
        if kind == "main":
            run_sweep(sweep_spec(preset, [checkpoint], device), output, progress=progress, window_losses=windows)
        elif kind == "calibration":
            seeds = suite.get_preset(preset).qid_calibration_seeds
            run_sweep(sweep_spec(preset, [checkpoint], device, calibration_seeds=seeds), output, progress=progress,
                      window_losses=windows)
        else:
            run_sweep(full_split_spec(preset, checkpoint, device), full_split_output(preset, runs_dir), progress=progress)
    return output


def full_split_spec(preset: str, checkpoint, device: str = "cpu"):
    """Every window of the eval split (the stratified sampler takes them all when asked for all)."""
    from qid.suite import corpus

    spec = suite.get_preset(preset)
    windows = corpus.load_split_tokens("eval").size // spec.seq_len
    windows = min(windows, spec.qid_full_split_windows or windows)
    bits = [b for b in FULL_SPLIT_BITS if b in spec.qid_bits] or list(spec.qid_bits[:1])
    return sweep_spec(preset, [checkpoint], device, eval_tokens=windows * (spec.seq_len - 1),
                      methods=FULL_SPLIT_METHODS, bits=bits, kl=False)
