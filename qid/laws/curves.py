"""Loss-curve laws: the loss at every step as a function of the whole learning-rate schedule up to that step.

Each law is a plain function of `lr` (the learning rate of every step 0..T−1 of one run, a `qid.laws.schedules`
array) and `step` (the steps at which to predict the loss), with named parameters; `qid.laws.registry` registers
them. Curve tables (`run, step, lr, loss`, one row per optimizer step, loss empty between measured steps)
are checked and split into runs here, and `curve_metrics` scores a predicted curve as Luo et al. do.

Normalisation (both laws): η is the raw learning rate as the optimizer used it (no rescaling by the peak),
S1 includes the warmup, and the sums start at step 0 with m_0 = 0. Rescaling every η by a factor c leaves
every prediction unchanged if Tissue's A → A·c^α and C → C/c, and Luo's A → A·c^α, B → B/c and
C → C·c^(γ−1); L0, α, β, γ and λ do not depend on the normalisation (tested). Luo et al.'s published
parameters use raw η: with them, this module reproduces their published test metrics exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qid.common.paths import DATA_DIR
from qid.laws.schedules import (
    LUO_SCHEDULES,
    MultiPowerTerms,
    annealing_area,
    annealing_area_derivative,
    check_schedule,
    forward_area,
    luo_schedule,
    multipower_loss_drop,
)
from qid.common.csvtables import DataError, load_table

LUO_CURVES_DIR = DATA_DIR / "reference" / "multipowerlaw"
LUO_SIZES = ("25M", "100M", "400M")
CURVE_COLUMNS = ("run", "step", "lr", "loss")
TISSUE_DECAY_REFERENCE = 0.999  # λ used in reproductions of Tissue et al. (papers.md §4: not confirmed in the paper)


# --- the laws ---------------------------------------------------------------------------------------------


def _schedule_inputs(lr, step):
    lr, steps = check_schedule(lr, step)
    return lr, steps


def tissue_annealing(lr, step, L0, A, alpha, C, decay):
    """Scaling law with learning-rate annealing (Tissue et al. 2024, arXiv 2408.11029):

    L(t) = L0 + A·S1(t)^(−α) − C·S2(t),  S1(t) = Σ_{τ≤t} η_τ,  S2(t) = Σ_{i≤t} m_i,
    m_i = λ·m_{i−1} + (η_{i−1} − η_i)  (λ = `decay`, the momentum of the annealing area).
    """
    lr, steps = _schedule_inputs(lr, step)
    return L0 + A * forward_area(lr)[steps] ** (-alpha) - C * annealing_area(lr, decay)[steps]


def luo_multipower(lr, step, L0, A, alpha, B, C, beta, gamma):
    """Multi-Power Law (Luo et al. 2025, arXiv 2503.12811):

    L(t) = L0 + A·S1(t)^(−α) − LD(t),  LD(t) = B·Σ_{k=1..t} (η_{k−1} − η_k)·G(η_k^(−γ)·S_k(t)),
    G(x) = 1 − (C·x + 1)^(−β),  S_k(t) = Σ_{τ=k..t} η_τ  (indexing as in the authors' code at commit 8da9f19).
    """
    lr, steps = _schedule_inputs(lr, step)
    return L0 + A * forward_area(lr)[steps] ** (-alpha) - B * multipower_loss_drop(lr, steps, C, beta, gamma)


# Luo et al.'s published parameters [L0, A, alpha, B, C, beta, gamma] per model size (their README and
# src/config.py at commit 8da9f19; papers.md §6), fitted on cosine_24000, constant_24000 and wsdcon_9.
LUO_PUBLISHED = {
    "25M": {"L0": 3.04045406, "A": 0.52468604, "alpha": 0.50786857, "B": 363.78751622, "C": 2.06560812,
            "beta": 0.58279013, "gamma": 0.64142257},
    "100M": {"L0": 2.6514477, "A": 0.60115152, "alpha": 0.45295811, "B": 437.9464276, "C": 2.13245612,
             "beta": 0.59785199, "gamma": 0.65523644},
    "400M": {"L0": 2.37474466, "A": 0.65421216, "alpha": 0.42878731, "B": 523.42464371, "C": 2.02462735,
             "beta": 0.59350493, "gamma": 0.63472457},
}
# Their published test metrics, averaged over the six test schedules (same source), as printed.
LUO_PUBLISHED_TEST_METRICS = {
    "25M": {"r2": "0.9988", "pred_error": "0.00110", "worst_error": "0.00409"},
    "100M": {"r2": "0.9983", "pred_error": "0.00142", "worst_error": "0.00583"},
    "400M": {"r2": "0.9978", "pred_error": "0.00168", "worst_error": "0.00995"},
}

# Bounds (data): every scale positive; exponents within what any published fit has needed, with room.
LUO_BOUNDS = {"L0": (0, None), "A": (0, None), "alpha": (0, 3), "B": (0, None), "C": (0, None),
              "beta": (0, 5), "gamma": (0, 3)}
TISSUE_BOUNDS = {"L0": (0, None), "A": (0, None), "alpha": (0, 3), "C": (0, None), "decay": (0.5, 0.99999)}


def is_curve_law(law) -> bool:
    """A law of a learning-rate schedule (variables lr and step) rather than of (N, D, P)."""
    return "lr" in law.variables


# --- derivatives for fitting ------------------------------------------------------------------------------


class CurveTerms:
    """What a fit evaluates again and again for one run, precomputed once: S1 at the measured steps and the
    Multi-Power pairs (see `qid.laws.schedules.MultiPowerTerms`)."""

    def __init__(self, lr, steps, multipower: bool):
        self.lr, self.steps = check_schedule(lr, steps)
        self.forward = forward_area(self.lr)[self.steps]
        self.multipower = MultiPowerTerms(self.lr, self.steps) if multipower else None


def luo_multipower_with_gradient(terms: CurveTerms, L0, A, alpha, B, C, beta, gamma, gradient: bool = True):
    """(prediction (n,), {parameter: d prediction/d parameter (n,)} or None) of `luo_multipower` at a run's
    measured steps."""
    power = terms.forward ** (-alpha)
    if not gradient:
        return L0 + A * power - B * terms.multipower.value(C, beta, gamma), None
    drop, drop_gradient = terms.multipower.value_and_gradient(C, beta, gamma)
    value = L0 + A * power - B * drop
    gradient = {"L0": np.ones_like(value), "A": power, "alpha": -A * power * np.log(terms.forward), "B": -drop,
                "C": -B * drop_gradient[0], "beta": -B * drop_gradient[1], "gamma": -B * drop_gradient[2]}
    return value, gradient


def tissue_annealing_with_gradient(terms: CurveTerms, L0, A, alpha, C, decay, gradient: bool = True):
    """(prediction, gradient or None) of `tissue_annealing` at a run's measured steps (dS2/dλ by the same recursion)."""
    power = terms.forward ** (-alpha)
    area = annealing_area(terms.lr, decay)[terms.steps]
    value = L0 + A * power - C * area
    if not gradient:
        return value, None
    gradient = {"L0": np.ones_like(value), "A": power, "alpha": -A * power * np.log(terms.forward), "C": -area,
                "decay": -C * annealing_area_derivative(terms.lr, decay)[terms.steps]}
    return value, gradient


CURVE_GRADIENTS = {"luo_multipower": luo_multipower_with_gradient, "tissue_annealing": tissue_annealing_with_gradient}


# --- curve tables -----------------------------------------------------------------------------------------


def check_curve_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a curve table (`run, step, lr, loss`; one row per step 0..T−1 of each run, loss empty where not
    measured) and return it sorted by run and step. Errors name the file, column and run."""
    import pandas as pd  # imported where used: the law registry loads this module for every `qid` command

    missing = [column for column in CURVE_COLUMNS if column not in table.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; a curve table has columns "
                        f"{', '.join(CURVE_COLUMNS)} (one row per step, loss empty between measured steps)")
    table = table.copy()
    for column in ("step", "lr", "loss"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: column {column} is not numeric at data row {row + 1} ({table[column].iloc[row]!r})")
        table[column] = values
    for column in ("step", "lr"):
        if table[column].isna().any():
            row = int(np.flatnonzero(table[column].isna().to_numpy())[0])
            raise DataError(f"{source}: column {column} is empty at data row {row + 1}; every step needs its {column}")
    if not np.all(np.isfinite(table["lr"])) or (table["lr"] < 0).any():
        raise DataError(f"{source}: column lr must be finite and >= 0")
    if not np.all(np.isfinite(table["loss"].dropna())) or (table["loss"].dropna() <= 0).any():
        raise DataError(f"{source}: column loss must be > 0 where given (it is taken in logs)")
    if (table["step"] != np.round(table["step"])).any() or (table["step"] < 0).any():
        raise DataError(f"{source}: column step must hold whole numbers >= 0")
    table["step"] = table["step"].astype(np.int64)
    empty_run = table["run"].isna() | (table["run"].astype(str).str.strip() == "")
    if empty_run.any():  # grouping by run would drop these rows without a word
        row = int(np.flatnonzero(empty_run.to_numpy())[0])
        raise DataError(f"{source}: column run is empty at data row {row + 1} ({int(empty_run.sum())} row(s) in all); "
                        "every row needs the name of its run")
    table["run"] = table["run"].astype(str)
    table = table.sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    for run, rows in table.groupby("run", sort=False):
        steps = rows["step"].to_numpy()
        if steps[0] != 0 or np.any(np.diff(steps) != 1):
            raise DataError(f"{source}: run {run!r} must list every step from 0 to its last ({steps[-1]}) exactly once, "
                            f"with that step's lr (found {len(steps)} rows)")
        measured = rows["loss"].notna().to_numpy()
        if not measured.any():
            raise DataError(f"{source}: run {run!r} has no measured loss")
        if np.any(rows["lr"].to_numpy()[steps[measured]] <= 0) or forward_area(rows["lr"].to_numpy())[steps[measured]].min() <= 0:
            raise DataError(f"{source}: run {run!r} has a loss at a step before the learning rate is > 0 (S1 = 0 there)")
    return table


def load_curve_table(path: str | Path) -> pd.DataFrame:
    """Read and check a curve CSV (see `check_curve_table`)."""
    table = load_table(path, required=CURVE_COLUMNS)
    checked = check_curve_table(table, str(path))
    checked.attrs["source"] = str(path)
    return checked


def split_runs(table: pd.DataFrame) -> dict[str, dict]:
    """{run: {"lr": per-step rates, "steps": measured steps, "loss": measured losses}} of a checked curve table."""
    runs = {}
    for run, rows in table.groupby("run", sort=False):
        measured = rows["loss"].notna().to_numpy()
        runs[run] = {"lr": rows["lr"].to_numpy(float), "steps": rows["step"].to_numpy()[measured],
                     "loss": rows["loss"].to_numpy(float)[measured]}
    return runs


def curve_table(runs: dict[str, dict]) -> pd.DataFrame:
    """The inverse of `split_runs`: a curve table with every step of each run and the loss at measured steps."""
    import pandas as pd  # imported where used: the law registry loads this module for every `qid` command

    frames = []
    for run, curve in runs.items():
        lr = np.asarray(curve["lr"], dtype=float)
        loss = np.full(len(lr), np.nan)
        loss[np.asarray(curve["steps"], dtype=int)] = curve["loss"]
        frames.append(pd.DataFrame({"run": run, "step": np.arange(len(lr)), "lr": lr, "loss": loss}))
    return pd.concat(frames, ignore_index=True)


def load_luo_curves(sizes=LUO_SIZES, schedules=LUO_SCHEDULES, directory: str | Path = LUO_CURVES_DIR) -> dict[str, dict]:
    """Luo et al.'s measured curves: {(size, schedule): {"lr", "steps", "loss"}} with the per-step schedule
    rebuilt (`luo_schedule`) and checked against the rate logged in the file at every measured step."""
    directory = Path(directory)
    curves = {}
    for size in sizes:
        if size not in LUO_SIZES:
            raise ValueError(f"unknown model size {size!r}; Luo et al.'s are {', '.join(LUO_SIZES)}")
        for schedule in schedules:
            path = directory / f"csv_{size.rstrip('M')}" / f"{schedule}.csv"
            table = load_table(path, required=("step", "lr", "loss"), positive=("step", "lr", "loss"))
            lr = luo_schedule(schedule)
            steps = table["step"].to_numpy(int)
            keep = steps < len(lr)  # the authors' loader drops rows at or beyond the schedule's last step
            steps, logged = steps[keep], table["lr"].to_numpy(float)[keep]
            if not np.allclose(lr[steps], logged, rtol=1e-9, atol=0):
                raise DataError(f"{path}: the rebuilt schedule {schedule} disagrees with the logged lr")
            curves[(size, schedule)] = {"lr": lr, "steps": steps, "loss": table["loss"].to_numpy(float)[keep]}
    return curves


# --- scoring a predicted curve ----------------------------------------------------------------------------


def curve_metrics(measured, predicted) -> dict[str, float]:
    """Luo et al.'s scores of one predicted curve: R² (1 − SS_res/SS_tot over the curve's points), PredE (mean
    of |L̂ − L|/L) and WorstE (max of |L̂ − L|/L), plus the RMSE in nats."""
    measured, predicted = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    relative = np.abs(predicted - measured) / measured
    residual = measured - predicted
    return {"r2": float(1 - residual @ residual / np.sum((measured - measured.mean()) ** 2)),
            "pred_error": float(relative.mean()), "worst_error": float(relative.max()),
            "rmse": float(np.sqrt(np.mean(residual**2)))}


def synthetic_curve_table(law, params: dict[str, float], schedules: dict[str, np.ndarray], every: int, first: int,
                          noise: float, seed: int) -> pd.DataFrame:
    """A curve table drawn from a curve law: for each named schedule, the loss measured every `every` steps from
    step `first` on, times exp(noise·ε) with ε ~ N(0, 1) (seeded); every step's lr listed, loss empty elsewhere."""
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0 (standard deviation of the log loss), got {noise}")
    rng = np.random.default_rng(seed)
    runs = {}
    for name, lr in schedules.items():
        steps = np.arange(first, len(lr), every)
        truth = np.asarray(law(params, lr=lr, step=steps), dtype=float)
        runs[name] = {"lr": lr, "steps": steps, "loss": truth * np.exp(noise * rng.standard_normal(len(steps)))}
    return curve_table(runs)
