"""Measuring the suite: QiD, KL and top-1 agreement of every checkpoint on the ladder, three calibration seeds on a
subset, and the whole-split check of the window sample.

Three resumable sweeps (`qid.sweep`), each into its own raw table under runs/suite/<preset>/:

* ``qid_sweep.csv`` — every checkpoint on the ladder × RTN/GPTQ/AWQ × bits, calibration seed 0; the same file
  also takes calibration seeds 1 and 2 of GPTQ/AWQ on the calibration checkpoints (`calibration_checkpoints`),
  so the calibration component of the variance is estimated at every size and bit width. Per-window losses go
  to ``window_losses.jsonl``.
* ``qid_full_split.csv`` — a few final checkpoints measured on every window of the eval split, to show that the
  stratified sample's QiD agrees with the whole split's within its standard error.

Settings that move results (batch size, threads) are fixed by the preset and recorded in every row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qid import suite
from qid.paths import REPO_ROOT

FULL_SPLIT_METHODS = ("rtn", "gptq")
FULL_SPLIT_BITS = (2, 3)


def sweep_output(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    return Path(runs_dir) / preset / "qid_sweep.csv"


def window_losses_output(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    return Path(runs_dir) / preset / "window_losses.jsonl"


def full_split_output(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    return Path(runs_dir) / preset / "qid_full_split.csv"


def sweep_spec(preset: str, checkpoints, device: str = "cpu", calibration_seeds=(0,), eval_tokens: int | None = None,
               methods=None, bits=None, kl: bool = True):
    """The preset's measurement settings as a qid.sweep.SweepSpec over the given checkpoint folders."""
    from qid.sweep import SweepSpec

    spec = suite.get_preset(preset)
    return SweepSpec(
        checkpoints=[str(c) for c in checkpoints], methods=list(methods or spec.qid_methods),
        bits=list(bits or spec.qid_bits), group_sizes=[spec.qid_group_size],
        eval_tokens=eval_tokens or spec.qid_eval_windows * (spec.seq_len - 1), eval_window=spec.seq_len,
        eval_source="corpus:eval", calibration_samples=spec.qid_calibration_samples,
        calibration_length=spec.seq_len, calibration_source="corpus:calibration", seed=0,
        calibration_seeds=list(calibration_seeds), device=device, batch_size=spec.qid_batch_size, kl=kl)


def _absolute(path) -> str:
    path = Path(path)
    return str(path if path.is_absolute() else REPO_ROOT / path)


def calibration_checkpoints(checkpoints) -> list[str]:
    """Per size: the cosine seed-0 checkpoints at D/N 20 and at the size's largest rung, and the WSD decayed
    checkpoint at the largest rung — three checkpoints per size for the calibration-seed repeats."""
    chosen = []
    for size, group in checkpoints.groupby("size", sort=False):
        top = group["rung"].max()
        picks = group[((group["design"] == "cosine") & (group["train_seed"] == 0) & group["rung"].isin([20, top]))
                      | ((group["phase"] == "decayed") & (group["rung"] == top) & (group["train_seed"] == 0))]
        chosen.extend(picks["checkpoint"])
    return [_absolute(c) for c in dict.fromkeys(chosen)]


def full_split_checkpoints(checkpoints) -> list[str]:
    """The cosine seed-0 final checkpoint of every size."""
    final = checkpoints[(checkpoints["phase"] == "final") & (checkpoints["train_seed"] == 0)]
    return [_absolute(c) for c in final["checkpoint"]]


def _mine(items: list[str], costs: list[float], shard) -> list[str]:
    """The items of shard i/n, balanced by cost (largest first onto the least-loaded worker)."""
    if shard is None:
        return items
    index, count = shard
    loads, mine = [0.0] * count, []
    for position in sorted(range(len(items)), key=lambda i: -costs[i]):
        worker = loads.index(min(loads))
        loads[worker] += costs[position]
        if worker == index - 1:
            mine.append(items[position])
    return [item for item in items if item in mine]


def measure_suite(preset: str = "cpu", runs_dir=suite.DEFAULT_RUNS_DIR, device: str = "cpu", shard=None,
                  progress: bool = True, full_split: bool = True, ray: str | None = None) -> Path:
    """Run the suite's three sweeps for one shard (by checkpoint, balanced by model cost); resumable.
    `ray` ('local' or an address): each checkpoint's cells run as Ray tasks (`qid.distributed`)."""
    from qid.suite_tables import collect_checkpoints, measured_checkpoints
    from qid.sweep import parse_shard, run_sweep

    shard = parse_shard(shard) if isinstance(shard, str) else shard
    table = measured_checkpoints(collect_checkpoints(preset, runs_dir))
    output, windows = sweep_output(preset, runs_dir), window_losses_output(preset, runs_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    every = [_absolute(c) for c in table["checkpoint"]]
    cost = dict(zip(every, (suite._cost(size) for size in table["size"])))
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
    from qid import corpus

    spec = suite.get_preset(preset)
    windows = corpus.load_split_tokens("eval").size // spec.seq_len
    windows = min(windows, spec.qid_full_split_windows or windows)
    bits = [b for b in FULL_SPLIT_BITS if b in spec.qid_bits] or list(spec.qid_bits[:1])
    return sweep_spec(preset, [checkpoint], device, eval_tokens=windows * (spec.seq_len - 1),
                      methods=FULL_SPLIT_METHODS, bits=bits, kl=False)


def full_split_comparison(preset: str, runs_dir, checkpoints):
    """Per checkpoint, method and bits: QiD on the sample and on the whole split, and their difference in SEs."""
    import pandas as pd

    from qid.suite_tables import _checkpoint_key
    from qid.sweep import load_results

    sample = load_results(sweep_output(preset, runs_dir))
    full = load_results(full_split_output(preset, runs_dir))
    sample = sample[(sample["calib_seed"].fillna(0) == 0)]
    keyed = checkpoints.assign(_key=checkpoints["checkpoint"].map(_checkpoint_key)).set_index("_key")
    rows = []
    for _, row in full.iterrows():
        key = _checkpoint_key(row["checkpoint"])
        match = sample[(sample["checkpoint"].map(_checkpoint_key) == key) & (sample["method"] == row["method"])
                       & (sample["bits"] == row["bits"])]
        if not len(match) or key not in keyed.index:
            continue
        other = match.iloc[0]
        rows.append({"run": keyed.loc[key, "run"], "size": keyed.loc[key, "size"], "step": int(row["step"]),
                     "method": row["method"], "bits": int(row["bits"]),
                     "windows_sample": int(other["eval_windows"]), "windows_full": int(row["eval_windows"]),
                     "qid_sample": other["qid"], "qid_sample_se": other["qid_se"],
                     "qid_full": row["qid"], "qid_full_se": row["qid_se"],
                     "difference_in_sample_se": (other["qid"] - row["qid"]) / other["qid_se"]})
    return pd.DataFrame(rows)
