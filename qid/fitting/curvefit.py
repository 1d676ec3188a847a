"""Fitting loss-curve laws (`qid.laws.curves`) with the project's fitter: the curve table as a fit problem.

A curve table (`run, step, lr, loss`: every step's learning rate, the loss where measured) becomes one
`CurveProblem` — the fitter's `Problem` with the law evaluated run by run on precomputed schedule terms and
an exact analytic gradient — so `qid.fitting.optimize.fit_law` runs its usual multi-start L-BFGS-B search, lmfit
polish, statistics and bootstrap on it. The points of the problem are the measured losses; a bootstrap
by run (`clusters="run"`) resamples whole curves, since points of one curve share that run's noise.

Luo et al. (2025) fit with Huber (δ = 1e-3) on log loss; `CURVE_FIT_OPTIONS` are those options.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qid.laws.curves import CURVE_GRADIENTS, CurveTerms, check_curve_table, is_curve_law, load_curve_table, split_runs
from qid.fitting.problem import Problem, default_log_parameters, resolve_bounds, table_sha256
from qid.laws.registry import Law
from qid.common.provenance import file_sha256
from qid.common.csvtables import DataError

CURVE_FIT_OPTIONS = {"loss": "huber", "delta": 1e-3, "space": "log"}  # Luo et al.'s objective
# Start grids (natural units) per curve law; L0's grid is scaled by the smallest measured loss (see curve_grid).
L0_START_FRACTIONS = (0.6, 0.8, 0.95)
CURVE_START_GRIDS = {
    "luo_multipower": {"A": [0.3, 1.0], "alpha": [0.3, 0.6], "B": [100.0, 600.0], "C": [0.5, 2.0],
                       "beta": [0.3, 0.6], "gamma": [0.3, 0.6]},
    "tissue_annealing": {"A": [0.3, 1.0], "alpha": [0.3, 0.6], "C": [0.1, 1.0, 10.0], "decay": [0.99, 0.999]},
}


class CurveProblem(Problem):
    """The fitter's problem for a curve law: point i is measured loss i of run `run_of_point[i]` at position
    `position[i]` of that run's measured steps. Predictions are computed per run (once per run present) and
    gathered, so a bootstrap subset with repeated runs costs no more than the runs it contains."""

    def __init__(self, law: Law, runs: dict[str, dict], loss: str, delta: float, space: str, free, fixed,
                 log_names, lower, upper):
        self.run_names = list(runs)
        self.terms = []
        for name in self.run_names:
            try:
                self.terms.append(CurveTerms(runs[name]["lr"], runs[name]["steps"], multipower=law.name == "luo_multipower"))
            except ValueError as error:  # the Multi-Power term too large to hold: say which run
                raise DataError(f"run {name!r}: {error}") from error
        counts = [len(runs[name]["steps"]) for name in self.run_names]
        self.run_of_point = np.repeat(np.arange(len(self.run_names)), counts)
        self.position = np.concatenate([np.arange(count) for count in counts])
        response = np.concatenate([runs[name]["loss"] for name in self.run_names])
        super().__init__(law, {}, response, loss, delta, space, free, fixed, log_names, lower, upper)
        self.gradient_function = CURVE_GRADIENTS[law.name]
        self.derivative_method = "analytic"

    def subset(self, index: np.ndarray) -> "CurveProblem":
        """The same problem on points `index` (repeats allowed): what a bootstrap replicate fits."""
        copy = object.__new__(CurveProblem)
        copy.__dict__.update(self.__dict__)
        copy.response = self.response[index]
        copy.log_response = None if self.log_response is None else self.log_response[index]
        copy.errors = None if self.errors is None else self.errors[index]
        copy.weights = None if self.weights is None else self.weights[index]
        copy.run_of_point = self.run_of_point[index]
        copy.position = self.position[index]
        return copy

    def _gather(self, per_run: dict[int, np.ndarray]) -> np.ndarray:
        out = np.empty(per_run[self.run_of_point[0]].shape[:-1] + (len(self.run_of_point),))
        for run, values in per_run.items():
            chosen = self.run_of_point == run
            out[..., chosen] = values[..., self.position[chosen]]
        return out

    def _evaluate(self, values: np.ndarray, with_gradient: bool):
        params = {**self.fixed, **dict(zip(self.free, np.asarray(values, dtype=float)))}
        predictions, gradients = {}, {}
        for run in np.unique(self.run_of_point):
            value, gradient = self.gradient_function(self.terms[run], **params, gradient=with_gradient)
            predictions[run] = value
            if with_gradient:
                gradients[run] = np.array([gradient[name] for name in self.free])
        return self._gather(predictions), (self._gather(gradients) if with_gradient else None)

    def predict(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.ndim == 2:  # several parameter sets (screening starts): one at a time
            return np.array([self._evaluate(row, False)[0] for row in values])
        return self._evaluate(values, False)[0]

    def predict_with_jacobian(self, values: np.ndarray):
        self.n_evaluations += 1
        return self._evaluate(values, True)

    def choose_derivative_method(self, theta: np.ndarray) -> None:
        """The gradient is analytic (tested against finite differences in tests/test_curves.py)."""


def prepare_curves(law: Law, data) -> tuple[pd.DataFrame, dict, dict[str, dict]]:
    """Check a curve table (CSV path or DataFrame) for a fit of `law`: (measured points as a table with columns
    run, step, loss; a description with the data hash; {run: {lr, steps, loss}})."""
    if not is_curve_law(law):
        raise ValueError(f"law {law.name} is not a loss-curve law")
    if isinstance(data, (str, Path)):
        table = load_curve_table(data)
        description = {"path": str(data), "sha256": file_sha256(Path(data))}
    elif isinstance(data, pd.DataFrame):
        table = check_curve_table(data, data.attrs.get("source", "table"))
        description = {"path": None, "sha256": table_sha256(table[["run", "step", "lr", "loss"]]),
                       "sha256_of": "the columns run, step, lr, loss written as CSV (17 significant digits)"}
    else:
        raise TypeError(f"data must be a CSV path or a pandas DataFrame, not {type(data).__name__}")
    runs = split_runs(table)
    points = pd.concat([pd.DataFrame({"run": name, "step": run["steps"], "loss": run["loss"]}) for name, run in runs.items()],
                       ignore_index=True)
    description.update({"n_points": len(points), "n_runs": len(runs), "runs": list(runs),
                        "columns": ["run", "step", "lr", "loss"]})
    return points, description, runs


def curve_problem(law: Law, data, loss: str, delta: float, space: str, fixed: dict, bounds, log_parameters):
    """(points table, description, CurveProblem): what `fit_law` needs to fit a curve law."""
    points, description, runs = prepare_curves(law, data)
    n_free = len(law.parameters) - len(fixed)
    if len(points) <= n_free:
        raise DataError(f"{description.get('path') or 'table'}: {len(points)} measured loss(es) for {n_free} free "
                        f"parameter(s) of law {law.name}; a fit needs more points than free parameters")
    lower, upper = resolve_bounds(law, bounds)
    for name, value in fixed.items():
        if not lower[name] <= value <= upper[name]:
            raise ValueError(f"fixed {name} = {value} lies outside its bounds ({lower[name]}, {upper[name]})")
    log_names = set(default_log_parameters(law, bounds) if log_parameters is None else log_parameters)
    free = [name for name in law.parameters if name not in fixed]
    problem = CurveProblem(law, runs, loss, delta, space, free, fixed, log_names & set(free), lower, upper)
    return points, description, problem


def curve_grid(law: Law, points: pd.DataFrame) -> dict[str, list[float]]:
    """The default start grid of a curve law: CURVE_START_GRIDS, with L0 at fractions of the smallest loss."""
    grid = {name: list(values) for name, values in CURVE_START_GRIDS.get(law.name, {}).items()}
    grid["L0"] = [fraction * float(points["loss"].min()) for fraction in L0_START_FRACTIONS]
    return grid
