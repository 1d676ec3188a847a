"""Chapter 08's analysis: which 4-bit format loses least along the ladder, per-format laws, one law for all formats.

The input is a suite formats table (`qid.suite.formats`, columns `FORMATS_COLUMNS`): one row per checkpoint ×
method × bits × group size with QiD, its window standard error and the storage cost `bits_per_weight`.

* `label_cells` names each (method, group size) as a reader would ('MXFP4', 'INT4 RTN g32', ...).
* `ranking_by_rung` compares the 4-bit cells on the same checkpoints, rung by rung: each cell's mean QiD and its
  difference from the rung's best cell, a t interval over the checkpoints of the paired differences (the spread
  across checkpoints, sizes and seeds is the noise of the comparison; every cell is measured on the same ones).
* `with_error_model` adds the book's error model (`qid.fitting.errormodel`: window, calibration and training-seed
  variance, the last from the cosine design's seed pairs, fitted per cell as a² + (r·QiD)²): `qid_se_total`.
* `ranking_by_run` pools the rungs from `min_rung` on without treating a run's checkpoints as independent: each
  training run's mean QiD per cell over those checkpoints, then the paired difference from the best cell with a
  t interval over runs (sizes × training seeds).
* `per_format_laws` fits QiD = k · D^β / N^α per cell (`ouyang_per_bit`), each residual divided by that total
  standard error, bootstrapping whole training runs.
* `per_format_holdout` checks those laws on rows they were not fitted to: each cell's law fitted without the
  largest size and each size's largest D/N rung, then scored on them in standard errors (beside the naive
  nearest-checkpoint prediction).
* `effective_bits` fits the unified law QiD = k · D^β / (N^α · P^γ) with P = bits per weight on the integer RTN rows
  (4 and 8 bits, both groupings), then asks each floating-point cell at which P that law gives its QiD: one law
  with an effective bit count covers the formats if P_eff is its storage cost within the interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from qid.chapters.exponent_checks import nearest_neighbour_baseline
from qid.chapters.suite_fits import holdout_groups
from qid.fitting.errormodel import variance_components
from qid.fitting.optimize import fit_law

FORMAT_NAMES = {"rtn": "INT4 RTN", "gptq": "INT4 GPTQ", "fp4": "FP4 (E2M1)", "mxfp4": "MXFP4", "nvfp4": "NVFP4",
                "gptq-mxfp4": "MXFP4 GPTQ", "gptq-nvfp4": "NVFP4 GPTQ", "fp8": "FP8 (E4M3)"}
FIXED_BLOCK_METHODS = ("mxfp4", "nvfp4", "gptq-mxfp4", "gptq-nvfp4")  # their block is the format's own
FLOAT_RTN_METHODS = ("fp4", "mxfp4", "nvfp4")  # the round-to-nearest floating-point 4-bit cells
MIN_ROWS_PER_FIT = 4  # fewer rows than this leave a three-parameter law unfitted


def cell_label(method: str, bits: int, group_size: int) -> str:
    """'MXFP4', 'INT4 RTN per channel', 'FP4 (E2M1) g32', 'INT8 RTN g32', 'FP8 (E4M3) per channel'."""
    name = FORMAT_NAMES.get(method, method)
    if method in ("rtn", "gptq") and bits != 4:
        name = name.replace("INT4", f"INT{bits}")
    if method in FIXED_BLOCK_METHODS:
        return name
    return f"{name} {'per channel' if group_size == -1 else f'g{group_size}'}"


def label_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table with `cell` (a readable label), `family` ('integer' / 'floating point') and D (= tokens)."""
    out = table.copy()
    out["cell"] = [cell_label(m, b, g) for m, b, g in zip(out["method"], out["bits"], out["group_size"])]
    out["family"] = np.where(out["method"].isin(["rtn", "gptq"]), "integer", "floating point")
    out["D"] = out["tokens"]
    return out


def with_error_model(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """`label_cells(table)` with the error model's columns (var_window, var_calibration, var_training,
    qid_se_total, ...) and its summary. Each cell (method × group size) is its own group of the error model, so a
    format's training-seed variance comes from that format's own seed pairs. Cells without repeats (a single
    calibration seed) get no calibration component, and the summary says so."""
    rows = label_cells(table)
    keyed = rows.assign(method=rows["cell"])  # the error model groups by method × bits: one group per cell
    keyed.attrs["source"] = table.attrs.get("source", "formats table")
    with_errors, summary = variance_components(keyed)
    return with_errors.assign(method=rows["method"].to_numpy()), summary


def _labelled_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(the table with its cell labels, the error column a fit divides by): `qid_se_total` where the error model
    was added (`with_error_model`), else the window errors `qid_se`."""
    rows = label_cells(table) if "cell" not in table.columns else table
    return rows, ("qid_se_total" if "qid_se_total" in rows.columns else "qid_se")


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """(mean, low, high) of the mean with a t interval on n − 1 degrees of freedom; NaN bounds when n < 2."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def ranking_by_rung(table: pd.DataFrame, bits: int = 4, confidence: float = 0.95) -> pd.DataFrame:
    """Per rung and cell at `bits`: checkpoints, mean bits per weight, mean QiD, and the paired difference from
    the rung's best cell (lowest mean QiD) with its t interval; `rank` 1 = least loss."""
    rows = label_cells(table[table["bits"] == bits])
    rows = rows.assign(checkpoint_key=rows["run"] + "@" + rows["step"].astype(str))
    out = []
    for rung, group in rows.groupby("rung"):
        wide = group.pivot_table(index="checkpoint_key", columns="cell", values="qid").dropna(axis=0)
        if wide.empty:
            continue
        means = wide.mean().sort_values()
        best = means.index[0]
        for rank, (cell, mean) in enumerate(means.items(), start=1):
            difference, low, high = t_interval((wide[cell] - wide[best]).to_numpy(), confidence)
            out.append({"rung": rung, "rank": rank, "cell": cell, "checkpoints": len(wide),
                        "bits_per_weight": float(group.loc[group["cell"] == cell, "bits_per_weight"].mean()),
                        "mean_qid": float(mean), "minus_best": difference, "low": low, "high": high})
    return pd.DataFrame(out)


def ranking_by_run(table: pd.DataFrame, bits: int = 4, min_rung: float = 20, confidence: float = 0.95,
                   max_bits_per_weight: float | None = None) -> pd.DataFrame:
    """Per cell at `bits`, over the checkpoints with rung ≥ `min_rung`: runs, mean bits per weight, mean QiD, and
    the paired difference from the best cell (lowest mean) with a t interval over training runs, each run first
    averaged over its checkpoints (the checkpoints of one run are not independent); `rank` 1 = least loss. Only
    checkpoints measured at every cell count. `max_bits_per_weight`: only cells whose mean storage is at most that
    (a comparison at equal storage)."""
    rows = label_cells(table[(table["bits"] == bits) & (table["rung"] >= min_rung)])
    if max_bits_per_weight is not None:
        storage = rows.groupby("cell")["bits_per_weight"].mean()
        rows = rows[rows["cell"].isin(storage[storage <= max_bits_per_weight + 1e-9].index)]
    wide = rows.pivot_table(index=["run", "step"], columns="cell", values="qid").dropna(axis=0)
    if wide.empty:
        return pd.DataFrame(columns=["rank", "cell", "runs", "checkpoints", "bits_per_weight", "mean_qid",
                                     "minus_best", "low", "high"])
    per_run = wide.groupby(level="run").mean()
    means = per_run.mean().sort_values()
    best = means.index[0]
    out = []
    for rank, (cell, mean) in enumerate(means.items(), start=1):
        difference, low, high = t_interval((per_run[cell] - per_run[best]).to_numpy(), confidence)
        out.append({"rank": rank, "cell": cell, "runs": len(per_run), "checkpoints": len(wide),
                    "bits_per_weight": float(rows.loc[rows["cell"] == cell, "bits_per_weight"].mean()),
                    "mean_qid": float(mean), "minus_best": difference, "low": low, "high": high})
    return pd.DataFrame(out)


def winners(ranking: pd.DataFrame) -> pd.DataFrame:
    """Per rung: the best cell, the runner-up, and whether the runner-up's excess loss interval excludes zero."""
    out = []
    for rung, group in ranking.groupby("rung"):
        group = group.sort_values("rank")
        first, second = group.iloc[0], group.iloc[1] if len(group) > 1 else None
        out.append({"rung": rung, "checkpoints": int(first["checkpoints"]), "best": first["cell"],
                    "best_qid": first["mean_qid"], "runner_up": None if second is None else second["cell"],
                    "runner_up_excess": np.nan if second is None else second["minus_best"],
                    "low": np.nan if second is None else second["low"],
                    "high": np.nan if second is None else second["high"],
                    "separated": bool(second is not None and second["low"] > 0)})
    return pd.DataFrame(out)


def per_format_laws(table: pd.DataFrame, cells, bootstrap: int, seed: int, confidence: float = 0.95) -> pd.DataFrame:
    """QiD = k · D^β / N^α fitted per cell (linear space, residuals over the error model's total standard error
    `qid_se_total` where the table has it, else the window errors; runs bootstrapped): one row per cell and
    parameter with value and interval; cells with too few rows are listed with NaN."""
    rows, errors = _labelled_rows(table)
    out = []
    for cell in cells:
        group = rows[rows["cell"] == cell].reset_index(drop=True)
        if len(group) < MIN_ROWS_PER_FIT or group["N"].nunique() < 2:
            out += [{"cell": cell, "parameter": name, "value": np.nan, "low": np.nan, "high": np.nan, "rows": len(group),
                     "identified": False} for name in ("k", "alpha", "beta")]
            continue
        fit = fit_law("ouyang_per_bit", group, space="linear", errors=errors, clusters="run", bootstrap=bootstrap,
                      seed=seed, confidence=confidence, starts=20, allow_failure=True)
        for name, value in fit.params.items():
            interval = (fit.intervals or {}).get(name) or [np.nan, np.nan]
            out.append({"cell": cell, "parameter": name, "value": value, "low": interval[0], "high": interval[1],
                        "rows": len(group), "identified": bool(fit.identified and fit.converged)})
    return pd.DataFrame(out)


def per_format_holdout(table: pd.DataFrame, cells, seed: int) -> pd.DataFrame:
    """Per cell: the per-format law fitted on the kept rows and scored on the held-out ones (`holdout_groups`: every
    row of the largest size and each other size's largest D/N rung, i.e. extrapolation in N and in D), in the same
    total standard errors the fit divides by. RMS z overall and for each held-out group, RMS error in nats, the
    relative bias (mean prediction / mean measurement − 1), and the naive baseline (each held-out row predicted by
    the kept checkpoint nearest in (ln N, ln D)). A calibrated error model gives RMS z near 1 in both groups."""
    rows, errors = _labelled_rows(table)
    out = []
    for cell in cells:
        # one bit width per cell: the naive baseline matches rows on P, so every row gets the same
        group = rows[rows["cell"] == cell].reset_index(drop=True).assign(P=0)
        in_largest, in_top_rung = holdout_groups(group)
        held_out = in_largest | in_top_rung
        largest = in_largest[held_out]  # held-out rows of the largest size; the rest are other sizes' top rungs
        train, test = group[~held_out].reset_index(drop=True), group[held_out].reset_index(drop=True)
        record = {"cell": cell, "n_train": len(train), "n_test": len(test)}
        if len(train) < MIN_ROWS_PER_FIT or train["N"].nunique() < 2 or test.empty:
            out.append(record | {"identified": False})
            continue
        fit = fit_law("ouyang_per_bit", train, space="linear", errors=errors, seed=seed, starts=20,
                      allow_failure=True)
        predicted = np.asarray(fit.predict(N=test["N"].to_numpy(float), D=test["D"].to_numpy(float)), dtype=float)
        naive = nearest_neighbour_baseline(train, test)
        measured, sigma = test["qid"].to_numpy(float), test[errors].to_numpy(float)
        z, z_naive = (measured - predicted) / sigma, (measured - naive) / sigma

        def rms(values):
            return float(np.sqrt(np.mean(np.square(values)))) if len(values) else np.nan

        out.append(record | {"rms_z": rms(z), "rms_z_largest_N": rms(z[largest]), "rms_z_top_rung": rms(z[~largest]),
                             "rms_z_naive": rms(z_naive), "rms_nats": rms(measured - predicted),
                             "relative_bias": float(predicted.mean() / measured.mean() - 1),
                             "identified": bool(fit.identified and fit.converged)})
    return pd.DataFrame(out)


def effective_bits(table: pd.DataFrame, bootstrap: int, seed: int, confidence: float = 0.95):
    """(the unified law fitted on integer RTN rows with P = bits per weight, a table per 4-bit RTN floating-point
    cell: its mean storage bits, QiD measured / predicted at its storage bits (ratio of sums), and the effective
    P at which the integer law predicts its QiD, with bootstrap intervals); (None, an empty table) when the integer
    rows hold fewer than two sizes or token counts, which cannot determine the law.

    The intervals carry both uncertainties: replicate i pairs the integer law's i-th bootstrap fit (training runs
    resampled) with the cell's rows resampled by training run independently. Resampling the two independently
    ignores that a run's integer and floating-point QiD move together, which widens the interval (conservative)."""
    rows, errors = _labelled_rows(table)
    rows = rows.assign(P=rows["bits_per_weight"])
    integer = rows[rows["method"] == "rtn"].reset_index(drop=True)
    if integer["N"].nunique() < 2 or integer["D"].nunique() < 2 or len(integer) < MIN_ROWS_PER_FIT + 1:
        return None, pd.DataFrame(columns=["cell", "rows", "bits_per_weight", "ratio", "ratio_low", "ratio_high",
                                           "effective_bits", "bits_low", "bits_high"])
    law = fit_law("ouyang_unified", integer, space="linear", errors=errors, clusters="run", starts=30,
                  bootstrap=bootstrap, seed=seed, confidence=confidence, allow_failure=True)
    samples = law.bootstrap_samples() or {}
    gammas = np.asarray(samples.get("gamma", []), dtype=float)
    generator = np.random.default_rng(seed)
    tail = 100 * (1 - confidence) / 2
    out = []
    for method in FLOAT_RTN_METHODS:
        for cell, group in rows[(rows["method"] == method) & (rows["bits"] == 4)].groupby("cell"):
            inputs = dict(N=group["N"].to_numpy(float), D=group["D"].to_numpy(float), P=group["P"].to_numpy(float))
            predicted = np.asarray(law.predict(**inputs), dtype=float)
            replicates = law.bootstrap_predictions(**inputs) if len(gammas) else np.empty((0, len(group)))
            measured, storage = group["qid"].to_numpy(float), group["P"].to_numpy(float)
            runs = group["run"].to_numpy()
            labels = np.unique(runs)

            def ratio_and_bits(index, prediction, gamma):
                ratio = measured[index].sum() / prediction[index].sum()
                return ratio, float(storage[index].mean()) * ratio ** (-1 / gamma) if ratio > 0 else np.nan

            ratio, p_eff = ratio_and_bits(np.arange(len(group)), predicted, law.params["gamma"])
            draws = []
            for prediction, gamma in zip(replicates, gammas):
                chosen = generator.choice(labels, size=len(labels), replace=True)  # a run drawn twice counts twice
                index = np.concatenate([np.flatnonzero(runs == label) for label in chosen])
                draws.append(ratio_and_bits(index, prediction, gamma))
            draws = np.asarray(draws, dtype=float).reshape(-1, 2)
            bounds = (np.nanpercentile(draws, [tail, 100 - tail], axis=0) if len(draws)
                      else np.full((2, 2), np.nan))
            out.append({"cell": cell, "rows": len(group), "bits_per_weight": float(storage.mean()),
                        "ratio": ratio, "ratio_low": bounds[0, 0], "ratio_high": bounds[1, 0],
                        "effective_bits": p_eff, "bits_low": bounds[0, 1], "bits_high": bounds[1, 1]})
    return law, pd.DataFrame(out)
