"""The training-seed variance of QiD: a² + (r·QiD)² per quantizer × bit width, from that quantizer's own seed pairs.

Two training seeds of the same size, schedule and rung give two checkpoints whose QiD differ by more than their
eval windows and calibration samples explain: that excess is the training seed's variance. It grows with QiD
(the spread of a pair is a roughly constant fraction of its level), so it is modelled as

    σ²_train(QiD) = a² + (r · QiD)²,

an absolute floor a (nats) plus a relative part r, estimated by maximum likelihood from the pair differences
d = q₀ − q₁ ~ Normal(0, 2σ²_train(m) + se₀² + se₁² + 2σ²_calibration), m the pair's mean QiD (clipped at 0).
Each quantizer × bit width gets its own (a, r) from its own pairs (AWQ's pairs never set GPTQ's error), pooled
over sizes unless a likelihood-ratio test rejects one (a, r) for all sizes and every size has enough pairs
(`MIN_PAIRS_PER_SIZE`) for its own; the test's p-value is kept either way (a rejected pooling with too few pairs
per size means sizes differ by more than the pooled model says: a persistent seed offset of one lineage).

The estimate rests on `pairs` differences and 2 parameters per group: its degrees of freedom ν = pairs − 2 are
carried into every row's variance as the factor ν / (ν − 2) (the variance of a t distribution with ν degrees of
freedom), so that a z-score against an estimated variance has unit spread. Both parameters are bounded below by
small positive values, never by zero: no group gets a training variance of exactly zero.

`seed_calibration` checks the model's spread: seed 1's rows are held out and predicted by seed 0's QiD, and the
z-scores' RMS per D/N band should be ≈ 1 (where QiD is small and where it is large). `leave_size_out` is the
stricter version with (a, r) re-estimated without the scored size.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import minimize

FLOOR_BOUNDS = (1e-9, 1.0)  # a, nats: a positive lower bound (no zero variance), far below any window SE
RELATIVE_BOUNDS = (1e-4, 10.0)  # r, fraction of QiD
POOLING_LEVEL = 0.05  # a likelihood-ratio test below this p-value gives each size its own (a, r)
BAND_FACTOR = 4.0  # D/N bands of the calibration check: a factor 4 (two rungs of a doubling ladder) each
MIN_PAIRS_PER_FIT = 4  # fewer pairs than this cannot determine (a, r)
MIN_PAIRS_PER_SIZE = 10  # a size gets its own (a, r) only with this many pairs (8 dof): fewer give noise, not a model


def pair_variance(floor: float, relative: float, level, noise):
    """Variance of a pair difference: 2(a² + (r·level)²) + the pair's measured window and calibration variance."""
    level = np.clip(np.asarray(level, dtype=float), 0.0, None)
    return 2 * (floor**2 + (relative * level) ** 2) + np.asarray(noise, dtype=float)


def fit_seed_variance(difference, level, noise) -> dict:
    """Maximum-likelihood (a, r) from pair differences, their levels and their measured noise variance.

    Returns {floor, relative, pairs, dof, inflation, negative_log_likelihood}; ν = pairs − 2."""
    difference, level, noise = (np.asarray(v, dtype=float) for v in (difference, level, noise))
    n = len(difference)
    if n < MIN_PAIRS_PER_FIT:
        raise ValueError(f"{n} seed pairs cannot determine the training-seed variance (need {MIN_PAIRS_PER_FIT})")

    def nll(theta):
        variance = pair_variance(math.exp(theta[0]), math.exp(theta[1]), level, noise)
        return float(0.5 * np.sum(difference**2 / variance + np.log(2 * math.pi * variance)))

    return maximize(nll, math.sqrt(max(np.mean(difference**2) / 2, FLOOR_BOUNDS[0] ** 2)), n)


def fit_repeat_variance(sample_variance, level, repeats) -> dict:
    """Maximum-likelihood (a, r) of σ² = a² + (r·level)² from per-checkpoint sample variances over `repeats`
    calibration seeds (ν = repeats − 1 each: ν s²/σ² ~ χ²_ν). Returns the same keys as `fit_seed_variance`, with
    `pairs` counting checkpoints and `dof` the summed ν − 2."""
    sample_variance, level, repeats = (np.asarray(v, dtype=float) for v in (sample_variance, level, repeats))
    nu = repeats - 1
    if len(sample_variance) < 2:
        raise ValueError(f"{len(sample_variance)} checkpoints with repeated calibration seeds cannot determine (a, r)")

    def nll(theta):
        variance = math.exp(theta[0]) ** 2 + (math.exp(theta[1]) * np.clip(level, 0.0, None)) ** 2
        return float(np.sum(0.5 * nu * (sample_variance / variance + np.log(variance))))

    fit = maximize(nll, math.sqrt(max(float(np.mean(sample_variance)), FLOOR_BOUNDS[0] ** 2)), len(sample_variance))
    fit["dof"] = int(nu.sum()) - 2
    fit["inflation"] = fit["dof"] / (fit["dof"] - 2) if fit["dof"] > 2 else math.inf
    return fit


def maximize(nll, scale: float, n: int) -> dict:
    """The (a, r) minimizing `nll(log a, log r)` within the bounds, from a few starts."""
    bounds = [tuple(math.log(b) for b in FLOOR_BOUNDS), tuple(math.log(b) for b in RELATIVE_BOUNDS)]
    best = None
    for floor0, relative0 in ((scale, 0.1), (scale / 10, 0.2), (FLOOR_BOUNDS[0] * 10, 0.3)):  # a few starts
        start = [min(max(math.log(floor0), bounds[0][0]), bounds[0][1]), math.log(relative0)]
        run = minimize(nll, start, method="L-BFGS-B", bounds=bounds)
        if best is None or run.fun < best.fun:
            best = run
    dof = n - 2
    return {"floor": math.exp(best.x[0]), "relative": math.exp(best.x[1]), "pairs": n, "dof": dof,
            "inflation": dof / (dof - 2) if dof > 2 else math.inf, "negative_log_likelihood": float(best.fun)}


def pair_noise(pairs: pd.DataFrame) -> np.ndarray:
    """The measured (non-training) variance of each pair difference: both window SEs and both calibration variances."""
    calibration = pairs["var_calibration"].to_numpy(float) if "var_calibration" in pairs else 0.0
    return pairs["qid_se_0"].to_numpy(float) ** 2 + pairs["qid_se_1"].to_numpy(float) ** 2 + 2 * calibration


def fit_groups(pairs: pd.DataFrame) -> pd.DataFrame:
    """One (a, r) per method × bits (or per method × bits × size where pooling over sizes is rejected), with the
    pairs, degrees of freedom, inflation and the pooling test's p-value."""
    records = []
    for (method, bits), group in pairs.groupby(["method", "bits"]):
        level = 0.5 * (group["qid_0"] + group["qid_1"])
        difference = group["qid_0"] - group["qid_1"]
        noise = pair_noise(group)
        try:
            pooled = fit_seed_variance(difference, level, noise)
        except ValueError:
            continue
        per_size = {}
        for size, mine in group.groupby("size"):
            index = mine.index
            try:
                per_size[size] = fit_seed_variance(difference[index], level[index], noise[group.index.get_indexer(index)])
            except ValueError:
                per_size = {}
                break
        separable = bool(per_size) and min(fit["pairs"] for fit in per_size.values()) >= MIN_PAIRS_PER_SIZE
        p_value = math.nan
        if len(per_size) >= 2:
            statistic = 2 * (pooled["negative_log_likelihood"] - sum(fit["negative_log_likelihood"] for fit in per_size.values()))
            p_value = float(stats.chi2.sf(max(statistic, 0.0), 2 * (len(per_size) - 1)))
        if separable and np.isfinite(p_value) and p_value < POOLING_LEVEL:
            for size, fit in per_size.items():
                records.append({"method": method, "bits": bits, "size": size, "pooled": False,
                                "pooling_p_value": p_value, **fit})
        else:
            records.append({"method": method, "bits": bits, "size": None, "pooled": True,
                            "pooling_p_value": p_value, **pooled})
    return pd.DataFrame(records, columns=["method", "bits", "size", "pooled", "pooling_p_value", "floor", "relative",
                                          "pairs", "dof", "inflation", "negative_log_likelihood"])


def group_for(groups: pd.DataFrame, method, bits, size):
    """The fitted (a, r) row that applies to one method × bits × size, or None."""
    mine = groups[(groups["method"] == method) & (groups["bits"] == bits)]
    if mine.empty:
        return None
    if mine["pooled"].iloc[0]:
        return mine.iloc[0]
    own = mine[mine["size"] == size]
    return own.iloc[0] if len(own) else None


def training_variance(groups: pd.DataFrame, method, bits, size, level: float) -> tuple[float, str]:
    """(inflated a² + (r·level)², where it came from) for one row; 0 with a reason where no group applies."""
    row = group_for(groups, method, bits, size)
    if row is None:
        return 0.0, "none (no seed pairs)"
    variance = row["floor"] ** 2 + (row["relative"] * max(level, 0.0)) ** 2
    return float(variance * row["inflation"]), ("method×bits" if row["pooled"] else "method×bits×size")


def d_over_n_band(tokens_per_parameter, smallest: float) -> np.ndarray:
    """Band index of each D/N: [smallest, 4·smallest), [4·smallest, 16·smallest), ... (`BAND_FACTOR`); a rung a few
    % below a band edge (the ladder's rungs are not exact) counts as on it."""
    ratio = np.asarray(tokens_per_parameter, dtype=float) / smallest
    return np.floor(np.log(ratio) / math.log(BAND_FACTOR) + 0.05).astype(int)


def seed_calibration(pairs: pd.DataFrame, groups: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The held-out-seed check of the training-seed model: (per-pair z-scores, RMS z per D/N band).

    Seed 1's rows are held out and predicted by seed 0's QiD at the same checkpoint; the variance of the miss is
    2σ²_train(q₀) (the error model's, scaled by the kept seed's QiD) plus the pair's measured window and
    calibration variance. z = (q₁ − q₀)/√variance, and an RMS z near 1 in every D/N band means the model's
    spread is right where the data are small and where they are large. `groups`: the fitted (a, r)
    (`fit_groups`; default: fitted to these pairs)."""
    groups = fit_groups(pairs) if groups is None else groups
    records = []
    for (method, bits, size), group in pairs.groupby(["method", "bits", "size"]):
        row = group_for(groups, method, bits, size)
        if row is None:
            continue
        variance = pair_variance(row["floor"], row["relative"], group["qid_0"], pair_noise(group)) * row["inflation"]
        records.append(group[["size", "method", "bits", "tokens_per_parameter_0"]].assign(
            z=(group["qid_1"] - group["qid_0"]).to_numpy(float) / np.sqrt(variance)))
    return band_summary(records)


def leave_size_out(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`seed_calibration` with each size's pairs scored by (a, r) pooled over the other sizes' pairs."""
    records = []
    for size in pairs["size"].unique():
        rest, held = pairs[pairs["size"] != size], pairs[pairs["size"] == size]
        for (method, bits), group in held.groupby(["method", "bits"]):
            train = rest[(rest["method"] == method) & (rest["bits"] == bits)]
            try:
                fit = fit_seed_variance(train["qid_0"] - train["qid_1"], 0.5 * (train["qid_0"] + train["qid_1"]),
                                        pair_noise(train))
            except ValueError:
                continue
            variance = pair_variance(fit["floor"], fit["relative"], group["qid_0"], pair_noise(group)) * fit["inflation"]
            records.append(group[["size", "method", "bits", "tokens_per_parameter_0"]].assign(
                z=(group["qid_1"] - group["qid_0"]).to_numpy(float) / np.sqrt(variance)))
    return band_summary(records)


def band_summary(records: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the z-scores with their D/N band, RMS z and pair count per band)."""
    columns = ["size", "method", "bits", "tokens_per_parameter_0", "z"]
    scores = pd.concat(records, ignore_index=True) if records else pd.DataFrame(columns=columns)
    if scores.empty:
        return scores, pd.DataFrame(columns=["band", "D/N low", "D/N high", "pairs", "rms_z"])
    scores["band"] = d_over_n_band(scores["tokens_per_parameter_0"], float(scores["tokens_per_parameter_0"].min()))
    bands = scores.groupby("band").agg(**{"D/N low": ("tokens_per_parameter_0", "min"),
                                          "D/N high": ("tokens_per_parameter_0", "max"),
                                          "pairs": ("z", "size"),
                                          "rms_z": ("z", lambda z: float(np.sqrt(np.mean(np.square(z)))))})
    return scores, bands.reset_index()
