"""Chapter 07's analyses: the training-precision grid (qid.suite.qat_grid) against Kumar et al.'s laws.

- `load_grid`, `load_ptq`: the committed tables, checked (one line naming the file and column on bad input);
- `design_table`: what the grid holds (runs per part, size, budget, seed) beside what was planned;
- `fit_precision_law`: the effective-parameter law fitted with the book's fitter and error model (per-run
  standard errors of the loss plus a fitted relative scatter), fixing what the grid cannot determine;
- `profile_gamma`: the profile likelihood of one γ (every other free parameter refitted at each value), and the
  region it allows: the honest interval where the fit alone does not identify γ;
- `seed_spread`: the seed-to-seed spread of the loss where two seeds were trained;
- `optimal_training_precision`: the compute-optimal precision P* under cost ∝ N·D·P;
- `matched_loss_ptq`: post-training quantization of QAT checkpoints against 16-bit-trained ones at matched loss.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from qid.common.csvtables import DataError, check_table, load_table
from qid.fitting.fit import fit_law
from qid.laws.registry import KUMAR_BASE_PUBLISHED, KUMAR_PRECISION_GAMMAS

CHAPTER = "07_training_precision"
LAW = "kumar_effective_parameters"
GRID_REQUIRED = ("run", "part", "size", "N", "rung", "tokens", "seed", "P_w", "P_a", "P_kv", "loss", "loss_se")
PTQ_REQUIRED = ("run", "size", "N", "tokens", "seed", "P_w", "loss", "method", "P_post", "loss_post", "delta_ptq",
                "delta_ptq_se")


def load_grid(path) -> pd.DataFrame:
    table = load_table(path, required=GRID_REQUIRED, positive=("N", "tokens", "P_w", "P_a", "P_kv", "loss"),
                       finite=("loss_se",))
    if table.empty:
        raise DataError(f"{path}: no runs")
    return table.rename(columns={"tokens": "D"})


def load_ptq(path) -> pd.DataFrame:
    return load_table(path, required=PTQ_REQUIRED, positive=("N", "tokens", "P_w", "P_post", "loss", "loss_post"),
                      finite=("delta_ptq", "delta_ptq_se"))


def design_table(grid: pd.DataFrame) -> pd.DataFrame:
    """Runs per part, size, budget and seed, with the precisions present."""
    rows = []
    for (part, size, rung, seed), group in grid.groupby(["part", "size", "rung", "seed"], sort=True):
        column = "P_w" if part == "weights" else None
        precisions = (sorted(group["P_w"].astype(int).unique()) if column
                      else sorted(zip(group["P_a"].astype(int), group["P_kv"].astype(int))))
        rows.append({"part": part, "size": size, "N": int(group["N"].iloc[0]), "D/N": rung, "seed": int(seed),
                     "runs": len(group), "precisions": ", ".join(str(p) for p in precisions)})
    return pd.DataFrame(rows)


def missing_runs(names) -> pd.DataFrame:
    """The planned runs not in the table, grouped by phase of the plan: phase, part, size, D/N, seed, precisions, runs."""
    from qid.suite.qat_grid import plan

    wanted = set(names)
    rows = []
    for run in plan():
        if run.name in wanted:
            rows.append({"phase": run.phase, "part": run.part, "size": run.size, "D/N": run.rung, "seed": run.seed,
                         "precision": (f"{run.weight_bits}" if run.part == "weights"
                                       else f"({run.activation_bits}, {run.kv_bits})")})
    table = pd.DataFrame(rows, columns=["phase", "part", "size", "D/N", "seed", "precision"])
    if table.empty:
        return table.assign(runs=[])
    grouped = table.groupby(["phase", "part", "size", "D/N", "seed"], sort=True)
    return grouped.agg(runs=("precision", "size"), precisions=("precision", ", ".join)).reset_index()


def fit_precision_law(grid: pd.DataFrame, *, bootstrap: int = 0, seed: int = 0, starts: int = 24,
                      confidence: float = 0.95):
    """Fit the effective-parameter law to every run; returns (FitResult, fixed: {name: (value, reason)}).

    Fixed where the grid cannot determine a parameter: β at Kumar's 0.4965 (two budgets cannot fix a D exponent
    beside B and E); B = 0 if only one budget was trained; α at Kumar's if only one size; γ_a, γ_kv at Kumar's when
    P_a, P_kv were not varied. Errors: each run's window SE plus a fitted relative scatter (the book's error model).
    """
    fixed = {"beta": (KUMAR_BASE_PUBLISHED["beta"], "two budgets cannot determine a D exponent beside B and E")}
    if grid["D"].nunique() < 2:
        fixed["B"] = (0.0, "one token budget: B·D^(−β) is a constant absorbed in E")
    if grid["N"].nunique() < 2:
        fixed["alpha"] = (KUMAR_BASE_PUBLISHED["alpha"], "one size: the N exponent is not determined")
    for name, column in (("gamma_a", "P_a"), ("gamma_kv", "P_kv")):
        if grid[column].nunique() < 2:
            fixed[name] = (KUMAR_PRECISION_GAMMAS[name], f"{column} was not varied")
    if grid["P_w"].nunique() < 2:
        raise DataError(f"the grid has one weight precision only ({grid['P_w'].iloc[0]}): gamma_w cannot be fitted")
    result = _fit(grid, {name: value for name, (value, _) in fixed.items()}, starts=starts, seed=seed,
                  bootstrap=bootstrap, confidence=confidence)
    return result, fixed


def _fit(grid: pd.DataFrame, fixed_values: dict, **options):
    """The effective-parameter law on every run: residuals over each run's window error, a fitted relative scatter,
    `fixed_values` held (the one model both the fit and its profile use)."""
    return fit_law(LAW, grid.assign(run_label=grid["run"]), space="linear", errors="loss_se", extra_scatter=True,
                   fixed=fixed_values, allow_failure=True, **options)


PROFILE_GAMMAS = tuple(float(v) for v in np.geomspace(0.05, 50, 25))  # the γ bounds of the law, log-spaced


def profile_gamma(grid: pd.DataFrame, fixed: dict, name: str = "gamma_w", values=PROFILE_GAMMAS, *,
                  starts: int = 24, seed: int = 0, confidence: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Profile likelihood of parameter `name`: the law refitted with `name` fixed at each of `values` (the other free
    parameters and the relative scatter refitted; `fixed` as `fit_precision_law` returns it).

    Returns (table: value, log_likelihood, deviance = 2·(max − this); region: low, high, and whether each end is only
    the edge of `values` — 'low_open' / 'high_open' — i.e. the data set no bound there). The region is where the
    deviance stays under the χ²₁ quantile (Wilks), ends interpolated linearly in log(value).
    """
    from scipy.stats import chi2

    base = {key: value for key, (value, _) in fixed.items()}
    rows = []
    for value in values:
        result = _fit(grid, {**base, name: float(value)}, starts=starts, seed=seed)
        rows.append({"value": float(value), "log_likelihood": float(result.log_likelihood)})
    profile = pd.DataFrame(rows)
    profile["deviance"] = 2 * (profile["log_likelihood"].max() - profile["log_likelihood"])
    limit = float(chi2.ppf(confidence, 1))
    inside = np.flatnonzero(profile["deviance"].to_numpy() <= limit)
    logs, deviance = np.log(profile["value"].to_numpy()), profile["deviance"].to_numpy()

    def crossing(i: int, j: int) -> float:  # where the deviance passes `limit` between grid points i (in) and j (out)
        share = (limit - deviance[i]) / (deviance[j] - deviance[i])
        return float(np.exp(logs[i] + share * (logs[j] - logs[i])))

    first, last = int(inside.min()), int(inside.max())
    region = {"low": float(profile["value"].iloc[0]) if first == 0 else crossing(first, first - 1),
              "high": float(profile["value"].iloc[-1]) if last == len(profile) - 1 else crossing(last, last + 1),
              "low_open": first == 0, "high_open": last == len(profile) - 1, "confidence": confidence,
              "best": float(profile.loc[profile["log_likelihood"].idxmax(), "value"])}
    return profile, region


def wald_interval(value: float, stderr: float | None, confidence: float = 0.95) -> tuple[float, float]:
    """value ± z·SE (NaN where lmfit gave no standard error)."""
    from scipy.stats import norm

    if stderr is None or not np.isfinite(stderr):
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + confidence / 2))
    return (value - z * stderr, value + z * stderr)


def seed_spread(grid: pd.DataFrame) -> pd.DataFrame:
    """Loss of seed 1 minus seed 0 for every (size, budget, precision) trained with both seeds."""
    keys = ["size", "N", "rung", "P_w", "P_a", "P_kv"]
    pairs = grid[grid["seed"].isin([0, 1])].pivot_table(index=keys, columns="seed", values="loss")
    if 0 not in pairs.columns or 1 not in pairs.columns:
        return pd.DataFrame(columns=[*keys, "loss_seed0", "loss_seed1", "difference"])
    pairs = pairs.dropna().reset_index().rename(columns={0: "loss_seed0", 1: "loss_seed1"})
    pairs["difference"] = pairs["loss_seed1"] - pairs["loss_seed0"]
    return pairs


def effective_fraction(P, gammas) -> np.ndarray:
    """Π_x (1 − e^(−P/γ_x)) for one precision P shared by the listed tensors."""
    P = np.asarray(P, dtype=float)
    return np.prod([1 - np.exp(-P / gamma) for gamma in gammas], axis=0)


def optimal_training_precision(params: dict, gammas, compute: float, precisions=None) -> dict:
    """P* minimising the law's loss at fixed compute C = N·D·P (constant factors dropped), N optimised for each P.

    gammas: the γ of every tensor trained at P (e.g. (γ_w,) for weights only, (γ_w, γ_a, γ_kv) for all three).
    With α = β the optimum maximises Π(1 − e^(−P/γ))/P whatever A, B and C (Kumar et al.'s compute-independent P*).
    """
    precisions = np.asarray(precisions if precisions is not None else np.arange(1.0, 16.01, 0.01), dtype=float)
    log_n = np.linspace(math.log(1e2), math.log(compute) - math.log(precisions.min()), 4000)
    best_loss, best = np.inf, None
    for P in precisions:
        N = np.exp(log_n)
        D = compute / (N * P)
        loss = (params["A"] * np.power(N * effective_fraction(P, gammas), -params["alpha"])
                + params["B"] * np.power(D, -params["beta"]) + params["E"])
        index = int(np.argmin(loss))
        if loss[index] < best_loss:
            best_loss, best = float(loss[index]), {"P": float(P), "N": float(N[index]), "D": float(D[index])}
    return {**best, "loss": best_loss, "compute": compute}


def closed_form_precision(gammas, precisions=None) -> float:
    """argmax_P Π(1 − e^(−P/γ))/P: the compute-optimal precision when α = β."""
    precisions = np.asarray(precisions if precisions is not None else np.arange(1.0, 16.0001, 0.001), dtype=float)
    return float(precisions[int(np.argmax(effective_fraction(precisions, gammas) / precisions))])


def matched_loss_ptq(ptq: pd.DataFrame, method: str) -> pd.DataFrame:
    """δ_PTQ of every QAT checkpoint (P_w < 16, P_post < P_w) beside the δ_PTQ a 16-bit-trained checkpoint of the
    same loss would show: a straight line δ = a + b·loss fitted (least squares) to the 16-bit runs at that P_post.

    Columns: run, size, P_w, P_post, loss, delta_ptq, delta_ptq_se, delta_16_matched, difference, in_range (the
    QAT run's loss lies inside the 16-bit runs' range: an interpolation, not an extrapolation).
    """
    check_table(ptq, "ptq table", required=PTQ_REQUIRED)
    rows = []
    selected = ptq[ptq["method"] == method]
    for P_post, cell in selected.groupby("P_post"):
        reference = cell[cell["P_w"] == 16]
        if len(reference) < 2 or reference["loss"].nunique() < 2:
            continue
        slope, intercept = np.polyfit(reference["loss"], reference["delta_ptq"], 1)
        low, high = reference["loss"].min(), reference["loss"].max()
        for _, row in cell[(cell["P_w"] < 16) & (cell["P_w"] > P_post)].iterrows():
            matched = intercept + slope * row["loss"]
            rows.append({"run": row["run"], "size": row["size"], "P_w": int(row["P_w"]), "P_post": int(P_post),
                         "loss": row["loss"], "delta_ptq": row["delta_ptq"], "delta_ptq_se": row["delta_ptq_se"],
                         "delta_16_matched": matched, "difference": row["delta_ptq"] - matched,
                         "in_range": bool(low <= row["loss"] <= high)})
    return pd.DataFrame(rows, columns=["run", "size", "P_w", "P_post", "loss", "delta_ptq", "delta_ptq_se",
                                       "delta_16_matched", "difference", "in_range"])


def mean_with_interval(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of `values` with a t interval (mean, low, high, n); NaN bounds below two values."""
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n < 2:
        return (mean, math.nan, math.nan, n)
    half = float(t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return (mean, mean - half, mean + half, n)
