"""The error model of a measured QiD: each row's variance as the sum of the components the suite measures.

A row's QiD (one checkpoint, quantizer, bit width, calibration seed) differs from the "true" QiD of that
size, data and bit width for three reasons, each estimated from the suite's own repeats:

1. **Eval windows** — `qid_se`, the paired standard error over the eval windows (measured per row).
2. **Calibration seed** (GPTQ, AWQ, GPTQ on a format grid: the methods whose rows carry a `calib_seed`; RTN has none) — the variance of QiD across calibration seeds 0, 1, 2 on
   the checkpoints that have them, pooled per size × bits × method (mean of the per-checkpoint sample
   variances; a checkpoint has only 2 degrees of freedom, too few to weight its own rows by). Groups without
   repeats borrow the pooled value of their bits × method. It contains a little window noise too (different
   calibrations are evaluated on the same windows, so most of it cancels): slightly conservative.
3. **Training seed** — cosine runs exist with seeds 0 and 1 at every size, and their checkpoints sit at the
   same rungs (the seeds share the schedule). For a pair of checkpoints at the same size, rung, method, bits
   and calibration seed, E[(q₀ − q₁)²] = 2σ²_train +
   se₀² + se₁² + 2σ²_calibration, so σ²_train = mean over pairs of ½(d² − se₀² − se₁²) − σ²_calibration, pooled
   per size × bits (over rungs and methods), floored at 0; groups without pairs borrow their bits' value.
   It is applied to every row of that size and bit width, WSD rows included (an assumption: one seed each).

The total standard error `qid_se_total` = √(window + calibration + training) is what the fits weight by.
Rows with several calibration seeds can be averaged into one row per checkpoint (`collapse_calibration_seeds`):
the calibration variance then shrinks by the number of seeds; window and training components do not
(the same windows and the same trained model are behind every seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qid.common.csvtables import DataError, check_table

CELL = ["run", "step", "method", "bits"]  # one checkpoint measured with one quantizer at one bit width
REQUIRED = ("design", "phase", "run", "size", "N", "train_seed", "step", "tokens", "tokens_per_parameter",
            "method", "bits", "calib_seed", "qid", "qid_se")
RUNG_TOLERANCE = 0.02  # two checkpoints whose tokens per parameter differ by < 2 % are at the same rung


def _pool(values: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    return values.groupby(keys)[column].mean()


def calibrated_methods(table: pd.DataFrame) -> set:
    """The methods whose rows carry a calibration seed (GPTQ, AWQ, GPTQ on a format grid, …).

    Read from the table rather than from a list of names: the quantizers' list (`qid.measure.quantize.
    CALIBRATED_METHODS`) is in a wing this one may not import, and a copy of it went stale as methods were added;
    the measurement writes `calib_seed` exactly for the calibrated methods."""
    return set(table.loc[table["calib_seed"].notna(), "method"])


def calibration_variance(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-checkpoint sample variances across calibration seeds, pooled variance per size × bits × method)."""
    calibrated = table[table["calib_seed"].notna()]
    grouped = calibrated.groupby(["size", *CELL])["qid"]
    cells = grouped.agg(["var", "count", "mean"]).reset_index()
    cells = cells[cells["count"] >= 2].rename(columns={"var": "variance", "count": "seeds", "mean": "qid_mean"})
    pooled = cells.groupby(["size", "bits", "method"]).agg(variance=("variance", "mean"), checkpoints=("variance", "size")).reset_index()
    return cells, pooled


def training_seed_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Cosine checkpoints present for train_seed 0 and 1 at the same size, rung, method, bits, calib seed."""
    # every rung of the cosine runs: seeds 0 and 1 share the schedule, so each rung is a pair
    final = table[(table["design"] == "cosine") & table["phase"].isin(["intermediate", "final"])].copy()
    final["rung"] = np.round(np.log(final["tokens_per_parameter"]) / np.log1p(RUNG_TOLERANCE)).astype(int)
    final["calib"] = final["calib_seed"].fillna(-1)
    keys = ["size", "rung", "method", "bits", "calib"]
    seed0 = final[final["train_seed"] == 0].drop_duplicates(keys)
    seed1 = final[final["train_seed"] == 1].drop_duplicates(keys)
    pairs = seed0.merge(seed1, on=keys, suffixes=("_0", "_1"))
    pairs["half_squared_difference"] = 0.5 * ((pairs["qid_0"] - pairs["qid_1"]) ** 2 - pairs["qid_se_0"] ** 2 - pairs["qid_se_1"] ** 2)
    return pairs[keys + ["tokens_per_parameter_0", "qid_0", "qid_1", "qid_se_0", "qid_se_1", "half_squared_difference"]]


def variance_components(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The table with var_window, var_calibration, var_training, qid_se_total and where each came from
    (`calibration_from`, `training_from`: 'size×bits×method' / 'size×bits', 'bits×method' / 'bits', 'none'),
    and a summary {calibration: per-group table, training: per-group table, pairs: n}."""
    check_table(table, table.attrs.get("source", "QiD table"), required=REQUIRED, finite=("qid", "qid_se"))
    out = table.copy()
    out["var_window"] = out["qid_se"] ** 2

    cells, pooled = calibration_variance(out)
    by_group = pooled.set_index(["size", "bits", "method"])["variance"]
    by_bits = pooled.groupby(["bits", "method"])["variance"].mean()
    calibration, source = [], []
    calibrated = calibrated_methods(out)
    for size, bits, method in zip(out["size"], out["bits"], out["method"]):
        if method not in calibrated:
            calibration.append(0.0), source.append("none (no calibration)")
        elif (size, bits, method) in by_group.index:
            calibration.append(float(by_group[(size, bits, method)])), source.append("size×bits×method")
        elif (bits, method) in by_bits.index:
            calibration.append(float(by_bits[(bits, method)])), source.append("bits×method")
        else:
            calibration.append(0.0), source.append("none (no repeats)")
    out["var_calibration"], out["calibration_from"] = calibration, source

    pairs = training_seed_pairs(out)
    if len(pairs):
        pair_calibration = pairs.merge(pooled, on=["size", "bits", "method"], how="left")["variance"].fillna(0.0).to_numpy()
        pairs = pairs.assign(estimate=pairs["half_squared_difference"].to_numpy() - pair_calibration)
    else:
        pairs = pairs.assign(estimate=pd.Series(dtype=float))
    training_groups = pairs.groupby(["size", "bits"]).agg(variance=("estimate", "mean"), pairs=("estimate", "size")).reset_index()
    training_groups["variance"] = training_groups["variance"].clip(lower=0.0)
    by_size_bits = training_groups.set_index(["size", "bits"])["variance"]
    by_bits_only = training_groups.groupby("bits")["variance"].mean()
    training, training_source = [], []
    for size, bits in zip(out["size"], out["bits"]):
        if (size, bits) in by_size_bits.index:
            training.append(float(by_size_bits[(size, bits)])), training_source.append("size×bits")
        elif bits in by_bits_only.index:
            training.append(float(by_bits_only[bits])), training_source.append("bits")
        else:
            training.append(0.0), training_source.append("none (no seed pairs)")
    out["var_training"], out["training_from"] = training, training_source
    out["qid_se_total"] = np.sqrt(out["var_window"] + out["var_calibration"] + out["var_training"])
    summary = {"calibration_cells": cells, "calibration": pooled, "training": training_groups, "pairs": pairs}
    return out, summary


def collapse_calibration_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint × method × bits: QiD averaged over calibration seeds, `calibration_seeds` counted,
    and qid_se_total recomputed with the calibration variance divided by that count."""
    if "var_training" not in table.columns:
        raise DataError("collapse_calibration_seeds needs the variance components (run variance_components first)")
    keys = [column for column in table.columns if column not in
            ("calib_seed", "qid", "qid_se", "var_window", "var_calibration", "qid_se_total", "kl", "kl_se",
             "top1_agree", "seconds", "loss_q", "calibration_from", "training_from")]
    keys = [key for key in keys if key in ("preset", "design", "phase", "run", "size", "N", "train_seed", "step",
                                           "tokens", "tokens_per_parameter", "epochs", "lr", "loss_16", "method",
                                           "bits", "group_size", "var_training")]
    aggregated = table.groupby(keys, dropna=False, sort=False).agg(
        qid=("qid", "mean"), var_window=("var_window", "mean"), var_calibration=("var_calibration", "first"),
        calibration_seeds=("qid", "size"), calibration_from=("calibration_from", "first"),
        training_from=("training_from", "first")).reset_index()
    aggregated["qid_se"] = np.sqrt(aggregated["var_window"])
    aggregated["var_calibration"] = aggregated["var_calibration"] / aggregated["calibration_seeds"]
    aggregated["qid_se_total"] = np.sqrt(aggregated["var_window"] + aggregated["var_calibration"] + aggregated["var_training"])
    aggregated.attrs.update(table.attrs)
    return aggregated


def lineage(table: pd.DataFrame) -> pd.Series:
    """Cluster label of a row for the bootstrap: design × size × training seed. Checkpoints of one lineage share
    initialisation and data order (WSD decay branches start from their stable trunk), so they move together."""
    return table["design"].astype(str) + "|" + table["size"].astype(str) + "|seed" + table["train_seed"].astype(str)


def window_bootstrap_qid(rows: pd.DataFrame, window_losses: pd.DataFrame, replicates: int, seed: int) -> np.ndarray:
    """QiD of every row recomputed `replicates` times from resampled eval windows, shape (replicates, rows).

    One draw of window indices per replicate is shared by every row (the windows are the same text for every
    checkpoint, so their errors are paired across rows too); a row's QiD is the mean over drawn windows of
    (quantized − 16-bit) window loss, averaged over its calibration seeds. Rows without window losses keep
    their measured QiD."""
    rng = np.random.default_rng(seed)
    losses = window_losses.copy()
    losses["calib"] = losses["calib_seed"].fillna(-1)
    n_windows = int(losses["window"].max()) + 1
    base = losses[losses["method"] == "none"].pivot_table(index=["run", "step"], columns="window", values="loss")
    quantized = losses[losses["method"] != "none"].pivot_table(index=["run", "step", "method", "bits"], columns="window",
                                                               values="loss", aggfunc="mean")
    draws = rng.integers(0, n_windows, size=(replicates, n_windows))
    out = np.tile(rows["qid"].to_numpy(float), (replicates, 1))
    for i, (run, step, method, bits) in enumerate(zip(rows["run"], rows["step"], rows["method"], rows["bits"])):
        key = (run, step, method, bits)
        if key not in quantized.index or (run, step) not in base.index:
            continue
        difference = quantized.loc[key].to_numpy(float) - base.loc[(run, step)].to_numpy(float)
        out[:, i] = difference[draws].mean(axis=1)
    return out
