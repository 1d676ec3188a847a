"""The error model of a measured QiD: each row's variance as the sum of the components the suite measures.

A row's QiD (one checkpoint, quantizer, bit width, calibration seed) differs from the "true" QiD of that
size, data and bit width for three reasons, each estimated from the suite's own repeats:

1. **Eval windows** — `qid_se`, the paired standard error over the eval windows (measured per row).
2. **Calibration seed** (GPTQ, AWQ, GPTQ on a format grid: the methods whose rows carry a `calib_seed`; RTN has none) — the variance of QiD across calibration seeds 0, 1, 2 on
   the checkpoints that have them, modelled as a² + (r·QiD)² per method × bits pooled over sizes (a checkpoint's
   sample variance has only 2 degrees of freedom; maximum likelihood on the χ² distribution of each). It
   contains a little window noise too (different calibrations are evaluated on the same windows, so most of it
   cancels): slightly conservative.
3. **Training seed** — cosine runs exist with seeds 0 and 1 at every size, and their checkpoints sit at the
   same rungs (the seeds share the schedule). Their differences give σ²_train = a² + (r·QiD)² per method × bits
   (`qid.fitting.seedvariance`: maximum likelihood, pooled over sizes unless a likelihood-ratio test rejects it,
   degrees of freedom carried as a t inflation ν/(ν − 2), no group floored at zero). A row's QiD level is the
   mean over training and calibration seeds of its size × rung × method × bits (`seed_levels`). It is applied
   to every row of that method and bit width, WSD rows included (an assumption: one seed each).

The total standard error `qid_se_total` = √(window + calibration + training) is what the fits weight by.
Rows with several calibration seeds can be averaged into one row per checkpoint (`collapse_calibration_seeds`):
the calibration variance then shrinks by the number of seeds; window and training components do not
(the same windows and the same trained model are behind every seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qid.common.csvtables import DataError, check_table
from qid.fitting.seedvariance import fit_groups, fit_repeat_variance, training_variance

CELL = ["run", "step", "method", "bits"]  # one checkpoint measured with one quantizer at one bit width
REQUIRED = ("design", "phase", "run", "size", "N", "train_seed", "step", "tokens", "tokens_per_parameter",
            "method", "bits", "calib_seed", "qid", "qid_se")
RUNG_TOLERANCE = 0.02  # two checkpoints whose tokens per parameter differ by < 2 % are at the same rung


def calibrated_methods(table: pd.DataFrame) -> set:
    """The methods whose rows carry a calibration seed (GPTQ, AWQ, GPTQ on a format grid, …).

    Read from the table rather than from a list of names: the quantizers' list (`qid.measure.quantize.
    CALIBRATED_METHODS`) is in a wing this one may not import, and a copy of it went stale as methods were added;
    the measurement writes `calib_seed` exactly for the calibrated methods."""
    return set(table.loc[table["calib_seed"].notna(), "method"])


def calibration_variance(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-checkpoint sample variances across calibration seeds, fitted a² + (r·QiD)² per method × bits).

    The calibration variance grows with QiD like the training seed's (a few % of QiD on late checkpoints, an
    absolute floor on early ones), so it gets the same two-parameter form, pooled over sizes (each size has only
    a couple of checkpoints with repeats; `qid.fitting.seedvariance.fit_repeat_variance`)."""
    calibrated = table[table["calib_seed"].notna()]
    grouped = calibrated.groupby(["size", *CELL])["qid"]
    cells = grouped.agg(["var", "count", "mean"]).reset_index()
    cells = cells[cells["count"] >= 2].rename(columns={"var": "variance", "count": "seeds", "mean": "qid_mean"})
    records = []
    for (method, bits), group in cells.groupby(["method", "bits"]):
        try:
            fit = fit_repeat_variance(group["variance"], group["qid_mean"], group["seeds"])
        except ValueError:
            continue
        records.append({"method": method, "bits": bits, "checkpoints": len(group), **fit})
    return cells, pd.DataFrame(records, columns=["method", "bits", "checkpoints", "floor", "relative", "pairs", "dof",
                                                 "inflation", "negative_log_likelihood"])


def with_rungs(table: pd.DataFrame) -> pd.DataFrame:
    """The table with an integer `rung_index` (tokens per parameter rounded to `RUNG_TOLERANCE` on a log scale):
    checkpoints at the same rung of different runs share it."""
    return table.assign(rung_index=np.round(np.log(table["tokens_per_parameter"].astype(float))
                                            / np.log1p(RUNG_TOLERANCE)).astype(int))


def training_seed_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Cosine checkpoints present for train_seed 0 and 1 at the same size, rung, method and bits, each measured with
    the first calibration seed (or none): one pair per checkpoint pair, quantizer and bit width (the repeated
    calibration seeds of a few checkpoints would count the same training-seed difference three times)."""
    cosine = table[(table["design"] == "cosine") & table["phase"].isin(["intermediate", "final"])]
    first_seed = cosine["calib_seed"].isna() | (cosine["calib_seed"] == cosine.groupby(CELL)["calib_seed"].transform("min"))
    chosen = with_rungs(cosine[first_seed])
    keys = ["size", "rung_index", "method", "bits"]
    columns = keys + ["tokens_per_parameter", "qid", "qid_se"] + (["var_calibration"] if "var_calibration" in chosen else [])
    seed0 = chosen[chosen["train_seed"] == 0].drop_duplicates(keys)[columns]
    seed1 = chosen[chosen["train_seed"] == 1].drop_duplicates(keys)[[c for c in columns if c != "tokens_per_parameter"]]
    pairs = seed0.merge(seed1, on=keys, suffixes=("_0", "_1"))
    if "var_calibration_0" in pairs:  # the calibration variance is pooled per size × bits × method: the same for both
        pairs = pairs.rename(columns={"var_calibration_0": "var_calibration"}).drop(columns="var_calibration_1")
    return pairs.rename(columns={"tokens_per_parameter": "tokens_per_parameter_0"}).reset_index(drop=True)


def seed_levels(table: pd.DataFrame) -> np.ndarray:
    """The QiD level that scales each row's training-seed variance: the mean QiD of its design, phase, size, rung,
    method and bit width over training and calibration seeds (less noisy than the row's own QiD, which would give
    rows that noise pushed down a smaller error)."""
    keyed = with_rungs(table)
    keys = ["design", "phase", "size", "rung_index", "method", "bits"]
    return keyed.groupby(keys, dropna=False)["qid"].transform("mean").to_numpy(float)


def variance_components(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The table with var_window, var_calibration, var_training, qid_se_total and where each came from
    (`calibration_from`: 'method×bits' or 'none'; `training_from`: 'method×bits',
    'method×bits×size' or 'none'), and a summary {calibration_cells, calibration, training (the fitted a, r per
    group with pairs and degrees of freedom), pairs}."""
    check_table(table, table.attrs.get("source", "QiD table"), required=REQUIRED, finite=("qid", "qid_se"))
    out = table.copy()
    out["var_window"] = out["qid_se"] ** 2

    cells, calibration_groups = calibration_variance(out)
    levels = seed_levels(out)
    by_group = calibration_groups.set_index(["method", "bits"])
    calibration, source = [], []
    calibrated = calibrated_methods(out)
    for bits, method, level in zip(out["bits"], out["method"], levels):
        if method not in calibrated:
            calibration.append(0.0), source.append("none (no calibration)")
        elif (method, bits) in by_group.index:
            fit = by_group.loc[(method, bits)]
            calibration.append(float((fit["floor"] ** 2 + (fit["relative"] * max(level, 0.0)) ** 2) * fit["inflation"]))
            source.append("method×bits")
        else:
            calibration.append(0.0), source.append("none (no repeats)")
    out["var_calibration"], out["calibration_from"] = calibration, source

    pairs = training_seed_pairs(out)
    groups = fit_groups(pairs)
    training, training_source = [], []
    for method, bits, size, level in zip(out["method"], out["bits"], out["size"], levels):
        variance, where = training_variance(groups, method, bits, size, level)
        training.append(variance), training_source.append(where)
    out["var_training"], out["training_from"], out["seed_level"] = training, training_source, levels
    out["qid_se_total"] = np.sqrt(out["var_window"] + out["var_calibration"] + out["var_training"])
    summary = {"calibration_cells": cells, "calibration": calibration_groups, "training": groups, "pairs": pairs}
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
                                           "bits", "group_size", "var_training", "beats_bigram")]
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
