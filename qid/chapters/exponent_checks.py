"""How precisely the suite determines the QiD law's exponents, and which law it prefers (chapter 05).

- `local_slopes`: d ln QiD / d ln D between consecutive rungs of every cosine run, per size, bit width and training
  seed: the exponent of D where the data are, with seed replication (a power law would give one constant slope).
- `slope_bands`: those slopes per D/N band, averaged within each size first (sizes are the independent units), with
  a t interval over sizes.
- `estimator_spread`: β (and α) of the unified law under several reasonable estimators and subsets of the same
  rows, to show beside the bootstrap interval of one estimator.
- `leave_one_lineage_out`: the model ranking. Rows of one training lineage are correlated (a checkpoint's
  residuals across bit widths, and checkpoints along a run), so a row-level AICc counts rows where there are far
  fewer independent units; each lineage in turn is refitted without and scored on its own rows instead.
- `nearest_neighbour_baseline`: the naive predictor every law must beat on the common hold-out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from qid.fitting.fit import fit_law

LOCAL_SLOPE_BAND = 4.0  # D/N bands of the local slopes: a factor 4 each (two rungs of a doubling ladder)


def local_slopes(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, bits, training seed, consecutive rung pair) with QiD > 0 at both ends: the slope
    Δ ln QiD / Δ ln D and the D/N at the pair's geometric midpoint."""
    out = []
    for (size, bits, seed), run in rows.groupby(["size", "bits", "train_seed"]):
        run = run.sort_values("D")
        tokens, qid = run["D"].to_numpy(float), run["qid"].to_numpy(float)
        per_parameter = run["tokens_per_parameter"].to_numpy(float)
        for i in range(len(run) - 1):
            if qid[i] <= 0 or qid[i + 1] <= 0 or tokens[i + 1] <= tokens[i]:
                continue
            out.append({"size": size, "N": float(run["N"].iloc[0]), "bits": int(bits), "train_seed": seed,
                        "D/N": float(math.sqrt(per_parameter[i] * per_parameter[i + 1])),
                        "slope": float(math.log(qid[i + 1] / qid[i]) / math.log(tokens[i + 1] / tokens[i]))})
    return pd.DataFrame(out, columns=["size", "N", "bits", "train_seed", "D/N", "slope"])


def slope_bands(slopes: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Local slopes per bit width and D/N band (`LOCAL_SLOPE_BAND`): seeds averaged within a size, then the mean
    over sizes with a t interval on (sizes − 1) dof, and the seed spread (mean |seed 0 − seed 1| within a size)."""
    if slopes.empty:
        return pd.DataFrame(columns=["bits", "D/N low", "D/N high", "sizes", "slope", "low", "high", "seed spread"])
    smallest = slopes["D/N"].min()
    table = slopes.assign(band=np.floor(np.log(slopes["D/N"] / smallest) / math.log(LOCAL_SLOPE_BAND) + 1e-9).astype(int))
    records = []
    for (bits, band), group in table.groupby(["bits", "band"]):
        per_size = group.groupby("size")["slope"].mean().to_numpy(float)
        seeds = group.pivot_table(index=["size", "D/N"], columns="train_seed", values="slope")
        spread = float((seeds.max(axis=1) - seeds.min(axis=1)).mean()) if seeds.shape[1] > 1 else math.nan
        n = len(per_size)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * per_size.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        records.append({"bits": int(bits), "D/N low": float(group["D/N"].min()), "D/N high": float(group["D/N"].max()),
                        "sizes": n, "slope": float(per_size.mean()), "low": float(per_size.mean() - half),
                        "high": float(per_size.mean() + half), "seed spread": spread})
    return pd.DataFrame(records)


def refit(law: str, rows: pd.DataFrame, start: dict, **options):
    """A fit of `law` on `rows` started from `start` (the full-data optimum: a subset's optimum lies near it)."""
    settings = dict(space="linear", errors="qid_se_total", starts=[start], allow_failure=True) | options
    return fit_law(law, rows.reset_index(drop=True), **settings)


def estimator_spread(rows: pd.DataFrame, unified, held_out: np.ndarray, extra_scatter: bool) -> pd.DataFrame:
    """The unified law's α and β under other reasonable estimators and subsets of the same rows, each refitted from
    the headline optimum: without the extra scatter, in log space (rows with QiD > 0), unweighted, on D/N at or
    above the median rung, on the common hold-out's training rows, and leaving out each size in turn."""
    start = dict(unified.params)
    variants = [("headline: linear, weighted, extra scatter" if extra_scatter else "headline: linear, weighted",
                 rows, {"extra_scatter": extra_scatter})]
    variants.append(("linear, weighted, no extra scatter", rows, {"extra_scatter": False}))
    variants.append(("log space, weighted (QiD > 0)", rows[rows["qid"] > 0], {"space": "log"}))
    variants.append(("linear, unweighted", rows, {"errors": None}))
    upper = rows["tokens_per_parameter"] >= rows["tokens_per_parameter"].median()
    variants.append(("upper half of the D/N ladder", rows[upper], {"extra_scatter": extra_scatter}))
    variants.append(("hold-out training rows", rows[~held_out], {"extra_scatter": extra_scatter}))
    for size in sorted(rows["N"].unique()):
        variants.append((f"without N = {size:,.0f}", rows[rows["N"] != size], {"extra_scatter": extra_scatter}))
    records = []
    for label, subset, options in variants:
        fit = refit("ouyang_unified", subset, start, **options)
        records.append({"estimator": label, "rows": len(subset), "alpha": fit.params["alpha"],
                        "beta": fit.params["beta"], "converged": fit.converged, "identified": fit.identified})
    return pd.DataFrame(records)


def law_predictor(law: str, rows: pd.DataFrame, start: dict, extra_scatter: bool):
    """Fit `law` (per bit width for 'ouyang_per_bit') on `rows`; returns predict(test) -> (prediction, scatter)."""
    if law != "ouyang_per_bit":
        fit = refit(law, rows, start, extra_scatter=extra_scatter)

        def predict(test):
            values = np.asarray(fit.predict(N=test["N"].to_numpy(), D=test["D"].to_numpy(), P=test["P"].to_numpy()))
            return values, np.full(len(test), fit.extra_scatter or 0.0)
        return predict
    fits = {bits: refit(law, group, start[bits], extra_scatter=extra_scatter) for bits, group in rows.groupby("P")}

    def predict(test):
        values, scatter = np.full(len(test), np.nan), np.zeros(len(test))
        for bits, fit in fits.items():
            mask = (test["P"] == bits).to_numpy()
            values[mask] = fit.predict(N=test.loc[mask, "N"].to_numpy(), D=test.loc[mask, "D"].to_numpy())
            scatter[mask] = fit.extra_scatter or 0.0
        return values, scatter
    return predict


def leave_one_lineage_out(rows: pd.DataFrame, starts: dict, extra_scatter: bool, cluster: str = "lineage") -> pd.DataFrame:
    """Each law refitted without one lineage at a time and scored on that lineage's rows. `starts`: {law: the
    full-data parameters} ({bits: parameters} for 'ouyang_per_bit'). One row per law, best (highest summed log
    predictive density) first, with the RMS z over all held-out rows and the folds the law wins."""
    records = []
    for label in rows[cluster].unique():
        train, test = rows[rows[cluster] != label], rows[rows[cluster] == label].reset_index(drop=True)
        if train["N"].nunique() < 2 or train["D"].nunique() < 3:
            continue
        for law, start in starts.items():
            predicted, scatter = law_predictor(law, train, start, extra_scatter)(test)
            variance = test["qid_se_total"].to_numpy(float) ** 2 + (scatter * predicted) ** 2
            z = (test["qid"].to_numpy(float) - predicted) / np.sqrt(variance)
            records.append({"law": law, "fold": label, "log_density": float(np.sum(-0.5 * (z**2 + np.log(2 * math.pi * variance)))),
                            "sum_z2": float(np.sum(z**2)), "rows": len(test)})
    folds = pd.DataFrame(records)
    if folds.empty:
        return pd.DataFrame(columns=["law", "folds", "log_density", "rms_z", "folds_won"])
    winners = folds.loc[folds.groupby("fold")["log_density"].idxmax(), "law"].value_counts()
    table = folds.groupby("law").agg(folds=("fold", "nunique"), log_density=("log_density", "sum"),
                                     sum_z2=("sum_z2", "sum"), rows=("rows", "sum")).reset_index()
    table["rms_z"] = np.sqrt(table["sum_z2"] / table["rows"])
    table["folds_won"] = table["law"].map(winners).fillna(0).astype(int)
    table = table.sort_values("log_density", ascending=False).reset_index(drop=True)
    table["Δ log density"] = table["log_density"] - table["log_density"].iloc[0]
    return table[["law", "folds", "rows", "log_density", "Δ log density", "rms_z", "folds_won"]]


def nearest_neighbour_baseline(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """The naive prediction: each test row's QiD is that of the training row at the same bit width nearest in
    (ln N, ln D)."""
    predictions = np.full(len(test), np.nan)
    for i, (N, D, P) in enumerate(zip(test["N"], test["D"], test["P"])):
        candidates = train[train["P"] == P]
        if candidates.empty:
            continue
        distance = np.hypot(np.log(candidates["N"] / N), np.log(candidates["D"] / D))
        predictions[i] = float(candidates["qid"].to_numpy(float)[int(np.argmin(distance.to_numpy()))])
    return predictions
