"""Fitting any registered law to data with lmfit: several starts, least squares or Huber, bootstrap intervals.

The problem is stated once, as lmfit `Parameters` built from the law (names from the law's function,
bounds and fixed values as data), and solved in two stages:

1. **Multi-start search.** A local L-BFGS-B run (scipy) from every start of a grid, or from N seeded
   random starts, on a vectorised numpy objective with an exact gradient (complex-step differentiation of
   the law, or an analytic gradient where one is registered). The 20 best end points are refined to tight
   tolerances and the best kept.
2. **Polish and report.** lmfit's `Minimizer` (method ``least_squares``, trust-region reflective with the
   same loss) restarts from that point; its `MinimizerResult` gives the `fit_report()` a reader sees and,
   for least squares, the standard errors.

A fit whose polish does not converge, or whose objective is not finite, is *failed*: `fit_law` raises
`FitError` (the failed result rides on the exception), unless asked for `allow_failure=True`, in which
case `result.converged` is False.

Residuals are taken in log space by default (QiD and loss span decades): r = log y − log ŷ. Positive
scale parameters with no upper bound (A, B, E, k, ...) are searched as their logarithm, so a start grid
in (a = log A, b = log B, e = log E, α, β) is exactly the one of Hoffmann et al. (2022); that makes
`fit_law("chinchilla", table, **HOFFMANN_OPTIONS)` their procedure: the *sum* of Huber_δ(log residual)
with δ = 1e-3, L-BFGS from their grid of 4500 starts, best kept.

Uncertainty: lmfit's covariance standard errors for least-squares fits (with the usual caveat: a local,
linearised estimate); none for Huber fits, whose curvature is set by the few points inside ±δ; and a
seeded bootstrap over data points (each replicate restarted from the full-data optimum) for percentile
intervals of parameters and of predictions. Results save to JSON (`FitResult.save`) and load back with
`load_fit`; `qid.laws.load_fit_parameters` reads the same files.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Callable

import lmfit
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from qid.laws import Law, get_law, read_fit_file
from qid.paths import SHARED_REFERENCE_DIR
from qid.provenance import file_sha256, git_commit, package_versions, utc_now
from qid.tables import DataError, check_table, load_table

LOSSES = ("least_squares", "huber")
SPACES = ("log", "linear")
DEFAULT_DELTA = 1e-3  # Huber threshold, in units of the residual (log space: ~0.1 % of the response)
DEFAULT_CONFIDENCE = 0.95  # coverage of the bootstrap percentile intervals
MAX_GRID_STARTS = 20_000  # a larger grid is refused: ask for random starts instead
DISTINCT_TOLERANCE = 0.01  # two values of N (or D) within 1 % count as one size when holding out the largest

# Tolerances of the local L-BFGS-B runs. Every start runs to scipy's defaults; the REFINED_STARTS best end
# points (and every bootstrap replicate) then run to tight ones, and lmfit polishes the best. Tight matters:
# with Huber δ = 1e-3 the objective is so flat that default tolerances stop a restart after a few steps
# (bootstrap spreads came out 10x too narrow on the Chinchilla data).
LBFGS_OPTIONS = {"ftol": 2.2e-9, "gtol": 1e-5, "maxiter": 15000}  # scipy's defaults
LBFGS_TIGHT_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 15000}
REFINED_STARTS = 20
POLISH_TOLERANCE = 1e-12  # ftol, xtol and gtol of the lmfit least_squares polish


# --- BLAS threads ------------------------------------------------------------------------------------------
# scipy's L-BFGS-B calls BLAS on vectors of a few numbers; a multi-threaded OpenBLAS then spends far more time
# waking its threads than computing (measured: 35x slower on a loaded 2-core machine). Fits run with one
# BLAS thread (threadpoolctl).


@contextlib.contextmanager
def single_threaded_blas():
    """Run the enclosed code with one BLAS thread, restoring the previous setting afterwards."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class FitError(RuntimeError):
    """A fit that did not converge; `error.result` holds the failed `FitResult` for inspection."""

    def __init__(self, message: str, result: "FitResult | None" = None):
        super().__init__(message)
        self.result = result


# --- start grids (data) -----------------------------------------------------------------------------------
# In natural units; a parameter searched as a logarithm gets an exponential grid. Chinchilla's is the grid of
# Hoffmann et al. (2022): a, b ∈ {0, 5, ..., 25}, e ∈ {-1, -0.5, ..., 1}, α, β ∈ {0, 0.5, ..., 2}.

START_GRIDS: dict[str, dict[str, np.ndarray]] = {
    "chinchilla": {
        "A": np.exp(np.arange(0.0, 26.0, 5.0)),
        "B": np.exp(np.arange(0.0, 26.0, 5.0)),
        "E": np.exp(np.arange(-1.0, 1.01, 0.5)),
        "alpha": np.arange(0.0, 2.01, 0.5),
        "beta": np.arange(0.0, 2.01, 0.5),
    },
    "ouyang_unified": {
        "k": np.exp(np.arange(-15.0, 5.1, 5.0)),
        "alpha": np.arange(0.0, 2.01, 0.5),
        "beta": np.arange(0.0, 2.01, 0.5),
        "gamma": np.arange(0.0, 10.01, 2.5),
    },
    "ouyang_per_bit": {
        "k": np.exp(np.arange(-15.0, 5.1, 5.0)),
        "alpha": np.arange(0.0, 2.01, 0.5),
        "beta": np.arange(0.0, 2.01, 0.5),
    },
    "ouyang_separate_D": {"k": np.exp(np.arange(-20.0, 5.1, 5.0)), "beta": np.arange(0.0, 2.01, 0.5)},
    "ouyang_separate_N": {"k": np.exp(np.arange(-5.0, 20.1, 5.0)), "alpha": np.arange(0.0, 2.01, 0.5)},
    "ouyang_separate_P": {"k": np.exp(np.arange(-5.0, 20.1, 5.0)), "gamma": np.arange(0.0, 10.01, 2.5)},
    "kumar_ptq": {
        "C_T": np.exp(np.arange(-10.0, 5.1, 5.0)),
        "gamma_D": np.arange(0.0, 2.01, 0.5),
        "gamma_N": np.arange(0.0, 2.01, 0.5),
        "gamma_post": np.array([0.25, 0.5, 1.0, 2.0, 4.0]),
    },
    "pythia_loss16": {
        "N_c": np.exp(np.arange(20.0, 50.1, 10.0)),
        "D_c": np.exp(np.arange(15.0, 30.1, 5.0)),
        "alpha_N": np.array([0.02, 0.05, 0.1, 0.2]),
        "alpha_D": np.array([0.1, 0.2, 0.4, 0.8]),
    },
}

# Default grid for a law without one (e.g. a reader's own): five values per parameter.
_DEFAULT_LOG_GRID = np.arange(-10.0, 10.1, 5.0)  # logarithm of a positive scale parameter
_DEFAULT_UNBOUNDED_GRID = np.arange(-2.0, 2.01, 1.0)  # a parameter unbounded on both sides

# Hoffmann et al.'s procedure as options of `fit_law` (their grid is START_GRIDS["chinchilla"]).
HOFFMANN_OPTIONS = {"loss": "huber", "delta": 1e-3, "space": "log", "starts": "grid"}

# Published results of that procedure on Epoch AI's 240 points (Besiroglu et al. 2024; papers.md §5), used
# as the target of the fitter's validation. B is poorly determined: compare on E, alpha, beta, objective.
HOFFMANN_PROCEDURE_ON_EPOCH_DATA = {
    "A": 477.84, "B": 2143.86, "E": 1.8172, "alpha": 0.3473, "beta": 0.3672, "huber_sum": 0.0010183,
}
# Epoch's bootstrap standard errors of their refit (same source), for comparison with ours.
EPOCH_BOOTSTRAP_STDERR = {"A": 124.5, "B": 1293.0, "E": 0.026, "alpha": 0.0154, "beta": 0.0206}
EPOCH_CHINCHILLA_FILE = "chinchilla_svg_extracted_data.csv"
EPOCH_DROPPED_LARGEST_LOSSES = 5  # Epoch's outlier rule: drop the 5 points with the largest loss


def load_epoch_chinchilla(path: str | Path | None = None, drop_largest_losses: int = EPOCH_DROPPED_LARGEST_LOSSES):
    """Epoch AI's points extracted from Hoffmann et al.'s Figure 4, as a table with columns N, D, loss.

    D = training FLOP / (6 N). Third-party data: read from ../shared/reference, never copied into the repo;
    raises FileNotFoundError where it is absent (callers skip).
    """
    path = Path(path) if path is not None else SHARED_REFERENCE_DIR / EPOCH_CHINCHILLA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Epoch's Chinchilla points are not available on this machine")
    raw = pd.read_csv(path)  # not load_table: its '#' comment marker would cut the file's hex colour column
    check_table(raw, str(path), required=["Model Size", "Training FLOP", "loss"], positive=["Model Size", "Training FLOP", "loss"])
    raw = raw.sort_values("loss", kind="stable")
    if drop_largest_losses:
        raw = raw.iloc[:-drop_largest_losses]
    table = pd.DataFrame({
        "N": raw["Model Size"].to_numpy(float),
        "D": raw["Training FLOP"].to_numpy(float) / (6.0 * raw["Model Size"].to_numpy(float)),
        "loss": raw["loss"].to_numpy(float),
    })
    table.attrs["source"] = str(path)
    table.attrs["sha256"] = file_sha256(path)
    return table


# --- analytic gradients (optional; complex-step differentiation is the default) ---------------------------
# Keyed by the law *function*, so a reader who re-registers a name with another function is not misled.
# Each returns (prediction, {parameter: d prediction / d parameter}) for arrays broadcast over the data.

GRADIENTS: dict[Callable, Callable] = {}


def register_gradient(function: Callable, gradient: Callable) -> None:
    """Attach an analytic gradient to a law function: gradient(**variables, **params) -> (value, {name: dvalue})."""
    GRADIENTS[function] = gradient


def _chinchilla_gradient(N, D, A, B, E, alpha, beta):
    n_term = np.power(N, -alpha)
    d_term = np.power(D, -beta)
    value = E + A * n_term + B * d_term
    return value, {
        "A": n_term,
        "B": d_term,
        "E": np.ones_like(value),
        "alpha": -A * n_term * np.log(N),
        "beta": -B * d_term * np.log(D),
    }


def _ouyang_unified_gradient(N, D, P, k, alpha, beta, gamma):
    shape = np.power(D, beta) / (np.power(N, alpha) * np.power(P, gamma))
    value = k * shape
    return value, {"k": shape, "alpha": -value * np.log(N), "beta": value * np.log(D), "gamma": -value * np.log(P)}


def _ouyang_per_bit_gradient(N, D, k, alpha, beta):
    shape = np.power(D, beta) / np.power(N, alpha)
    value = k * shape
    return value, {"k": shape, "alpha": -value * np.log(N), "beta": value * np.log(D)}


def _kumar_ptq_gradient(N, D, P, C_T, gamma_D, gamma_N, gamma_post):
    shape = np.power(D, gamma_D) / np.power(N, gamma_N) * np.exp(-P / gamma_post)
    value = C_T * shape
    return value, {"C_T": shape, "gamma_D": value * np.log(D), "gamma_N": -value * np.log(N),
                   "gamma_post": value * P / gamma_post**2}


def _register_builtin_gradients() -> None:
    from qid import laws

    register_gradient(laws.chinchilla, _chinchilla_gradient)
    register_gradient(laws.ouyang_unified, _ouyang_unified_gradient)
    register_gradient(laws.ouyang_per_bit, _ouyang_per_bit_gradient)
    register_gradient(laws.kumar_ptq, _kumar_ptq_gradient)


_register_builtin_gradients()


# --- the objective ----------------------------------------------------------------------------------------


def huber(residuals: np.ndarray, delta: float) -> np.ndarray:
    """Huber's function, elementwise: r²/2 for |r| ≤ δ, δ(|r| − δ/2) beyond (as scipy.special.huber)."""
    magnitude = np.abs(residuals)
    return np.where(magnitude <= delta, 0.5 * residuals**2, delta * (magnitude - 0.5 * delta))


def objective_value(residuals: np.ndarray, loss: str = "least_squares", delta: float = DEFAULT_DELTA) -> float:
    """The fitted objective: the sum of squared residuals, or the SUM (not the mean) of Huber_δ."""
    residuals = np.asarray(residuals, dtype=float)
    if loss == "least_squares":
        return float(residuals @ residuals)
    if loss == "huber":
        return float(huber(residuals, delta).sum())
    raise ValueError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")


def objective_description(loss: str, delta: float, space: str) -> str:
    residual = "log y - log fit" if space == "log" else "y - fit"
    if loss == "huber":
        return f"sum of Huber_delta({residual}), delta = {delta:g}"
    return f"sum of squares of ({residual})"


class _Problem:
    """One fit problem in the search coordinates θ (a logarithm for log-searched parameters)."""

    def __init__(self, law: Law, variables: dict, response: np.ndarray, loss: str, delta: float, space: str,
                 free: list[str], fixed: dict[str, float], log_names: set[str],
                 lower: dict[str, float], upper: dict[str, float]):
        self.law, self.loss, self.delta, self.space = law, loss, delta, space
        self.variables = variables
        self.response = response
        self.log_response = np.log(response) if space == "log" else None
        self.free, self.fixed = free, fixed
        self.is_log = np.array([name in log_names for name in free])
        self.bounds = []
        for name, is_log in zip(free, self.is_log):
            low, high = lower[name], upper[name]
            if is_log:
                low = math.log(low) if low > 0 else -np.inf
                high = math.log(high) if np.isfinite(high) else np.inf
            self.bounds.append((low, high))
        self.bounds = np.array(self.bounds, dtype=float).reshape(len(free), 2)
        self.gradient_function = GRADIENTS.get(law.function)
        self.derivative_method = "analytic" if self.gradient_function else "complex-step"
        self.n_evaluations = 0

    # coordinates
    def natural(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        return np.where(self.is_log, np.exp(theta), theta)

    def search(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.is_log, np.log(values), values)

    def params(self, theta: np.ndarray) -> dict[str, float]:
        values = self.natural(theta)
        return {**self.fixed, **{name: float(value) for name, value in zip(self.free, values)}}

    # predictions
    def predict(self, values: np.ndarray) -> np.ndarray:
        """Prediction for free-parameter values; a 2-D `values` (S, k) gives (S, n) for S parameter sets."""
        values = np.asarray(values, dtype=float)
        if values.ndim == 1:
            free = dict(zip(self.free, values))
        else:
            free = {name: values[:, [j]] for j, name in enumerate(self.free)}
        return self.law.function(**self.variables, **self.fixed, **free)

    def predict_with_jacobian(self, values: np.ndarray):
        """(prediction (n,), d prediction / d free parameter (k, n))."""
        self.n_evaluations += 1
        if self.gradient_function is not None:
            value, partial = self.gradient_function(**self.variables, **self.fixed, **dict(zip(self.free, values)))
            return value, np.array([partial[name] for name in self.free])
        if self.derivative_method == "complex-step":
            return self._complex_step(values)
        return self._finite_difference(values)

    def _complex_step(self, values: np.ndarray):
        # Complex-step differentiation (Squire & Trapp 1998): f(p + ih)'s imaginary part / h is df/dp to
        # machine precision for analytic f, with no subtractive cancellation. One call covers all k parameters.
        k = len(self.free)
        step = 1e-20 * np.maximum(1.0, np.abs(values))
        shifted = values[None, :].astype(complex) + 1j * np.diag(step)
        free = {name: shifted[:, [j]] for j, name in enumerate(self.free)}
        out = self.law.function(**self.variables, **self.fixed, **free)
        out = np.broadcast_to(out, (k, out.shape[-1]))
        return np.real(out[0]), np.imag(out) / step[:, None]

    def _finite_difference(self, values: np.ndarray):
        k = len(self.free)
        step = 1e-6 * np.maximum(1e-3, np.abs(values))
        shifted = np.vstack([values, values + np.diag(step), values - np.diag(step)])
        out = np.asarray(self.predict(shifted))
        return out[0], (out[1 : k + 1] - out[k + 1 :]) / (2 * step[:, None])

    def choose_derivative_method(self, theta: np.ndarray) -> None:
        """Use complex steps when the law is complex-safe (checked against central differences), else differences."""
        if self.gradient_function is not None:
            return
        values = self.natural(theta)
        try:
            with np.errstate(all="ignore"):
                _, complex_jacobian = self._complex_step(values)
                _, difference_jacobian = self._finite_difference(values)
            scale = np.maximum(np.abs(difference_jacobian), 1e-8 * np.abs(difference_jacobian).max() + 1e-300)
            agree = np.all(np.isfinite(complex_jacobian)) and np.all(np.abs(complex_jacobian - difference_jacobian) <= 1e-4 * scale + 1e-10)
        except (TypeError, ValueError):
            agree = False
        self.derivative_method = "complex-step" if agree else "finite-difference"

    # residuals and objective
    def residuals_from_prediction(self, prediction: np.ndarray) -> np.ndarray:
        if self.space == "log":
            return self.log_response - np.log(prediction)
        return self.response - prediction

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.residuals_from_prediction(self.predict(self.natural(theta)))

    def residual_jacobian(self, theta: np.ndarray):
        """(residuals (n,), d residual / d θ (k, n)). Callers silence floating-point warnings (np.errstate)."""
        values = self.natural(theta)
        prediction, jacobian = self.predict_with_jacobian(values)
        residuals = self.residuals_from_prediction(prediction)
        chain = np.where(self.is_log, -values, -1.0)  # dp/dθ = p for a log-searched parameter; dr/df = -1
        if self.space == "log":
            return residuals, jacobian * (chain[:, None] / prediction)
        return residuals, jacobian * chain[:, None]

    def value(self, theta: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            residuals = self.residuals(theta)
        if not np.all(np.isfinite(residuals)):
            return np.inf
        return objective_value(residuals, self.loss, self.delta)

    def value_and_gradient(self, theta: np.ndarray):
        """Objective and its gradient in θ: the hot loop of the search (kept lean; called under np.errstate)."""
        residuals, jacobian = self.residual_jacobian(theta)
        if self.loss == "least_squares":
            value, gradient = float(residuals @ residuals), 2.0 * (jacobian @ residuals)
        else:
            delta = self.delta
            clipped = np.clip(residuals, -delta, delta)
            # Huber_δ(r) = r²/2 inside ±δ and δ|r| − δ²/2 outside; both equal clipped·(r − clipped/2).
            value, gradient = float(clipped @ (residuals - 0.5 * clipped)), jacobian @ clipped
        if not (math.isfinite(value) and np.isfinite(gradient).all()):
            return np.inf, np.zeros_like(theta)
        return value, gradient

    def batch_values(self, thetas: np.ndarray) -> np.ndarray:
        """Objective at many starts at once (vectorised over starts), for screening a grid."""
        thetas = np.atleast_2d(thetas)
        chunk = max(1, 2_000_000 // max(1, len(self.response)))
        out = np.empty(len(thetas))
        for begin in range(0, len(thetas), chunk):
            block = thetas[begin : begin + chunk]
            try:
                with np.errstate(all="ignore"):
                    prediction = np.asarray(self.predict(self.natural(block)))
                    prediction = np.broadcast_to(prediction, (len(block), len(self.response)))
                    residuals = self.residuals_from_prediction(prediction)
                if self.loss == "least_squares":
                    values = np.sum(residuals**2, axis=1)
                else:
                    values = huber(residuals, self.delta).sum(axis=1)
                out[begin : begin + chunk] = np.where(np.all(np.isfinite(residuals), axis=1), values, np.inf)
            except (TypeError, ValueError):  # a law that does not broadcast over parameter arrays
                out[begin : begin + chunk] = [self.value(theta) for theta in block]
        return out

    def local_fit(self, theta0: np.ndarray, max_iterations: int | None = None, tight: bool = False):
        """One L-BFGS-B run from θ0 (clipped into the bounds), to default or tight tolerances."""
        theta0 = np.clip(theta0, self.bounds[:, 0], self.bounds[:, 1])
        options = dict(LBFGS_TIGHT_OPTIONS if tight else LBFGS_OPTIONS)
        if max_iterations is not None:
            options["maxiter"] = max_iterations
        with np.errstate(all="ignore"):
            return minimize(self.value_and_gradient, theta0, jac=True, method="L-BFGS-B", bounds=self.bounds, options=options)


# --- the fit ----------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """A fitted law: values, uncertainties, fit statistics and provenance. Saved and loaded as JSON."""

    law: str
    params: dict[str, float]
    stderr: dict[str, float | None]
    stderr_note: str
    objective: float
    objective_name: str
    n_points: int
    n_free: int
    converged: bool
    message: str
    rss: float
    aic: float
    bic: float
    fixed: dict[str, float]
    bounds: dict[str, list]
    options: dict
    starts: dict
    data: dict
    confidence: float = DEFAULT_CONFIDENCE
    intervals: dict[str, list[float]] | None = None
    bootstrap: dict | None = None
    extrapolation: dict | None = None
    provenance: dict = field(default_factory=dict)
    # Not saved: lmfit's result of the polish (for fit_report), the residuals and the fitted table.
    lmfit_result: lmfit.minimizer.MinimizerResult | None = field(default=None, repr=False, compare=False)
    residuals: np.ndarray | None = field(default=None, repr=False, compare=False)
    table: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def law_object(self) -> Law:
        return get_law(self.law)

    def predict(self, **variables) -> np.ndarray:
        """The fitted law at the given N, D, P."""
        return self.law_object(self.params, **variables)

    def bootstrap_predictions(self, **variables) -> np.ndarray:
        """Predictions of every converged bootstrap replicate, shape (replicates, *inputs)."""
        samples = self.bootstrap_samples()
        if samples is None:
            raise ValueError(f"fit of {self.law} has no bootstrap samples (fit again with bootstrap > 0)")
        law = self.law_object
        names = list(samples)
        columns = {name: np.asarray(samples[name], dtype=float) for name in names}
        count = len(columns[names[0]])
        inputs = {name: np.asarray(variables[name], dtype=float) for name in law.variables if name in variables}
        return np.array([law({name: columns[name][i] for name in names} | self.fixed, **inputs) for i in range(count)])

    def prediction_interval(self, confidence: float | None = None, **variables) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap interval of the law's prediction (a confidence band for the mean, not for new points)."""
        confidence = self.confidence if confidence is None else confidence
        predictions = self.bootstrap_predictions(**variables)
        tail = 100 * (1 - confidence) / 2
        return np.percentile(predictions, tail, axis=0), np.percentile(predictions, 100 - tail, axis=0)

    def bootstrap_samples(self) -> dict[str, list[float]] | None:
        if not self.bootstrap or not self.bootstrap.get("samples"):
            return None
        return self.bootstrap["samples"]

    def fit_report(self) -> str:
        """lmfit's report of the polish (only for a fit made in this session), else a summary of the saved values."""
        if self.lmfit_result is not None:
            return lmfit.fit_report(self.lmfit_result)
        lines = [f"[[Fit of {self.law}]] ({self.objective_name} = {self.objective:.6g}, {self.n_points} points)"]
        for name, value in self.params.items():
            error = self.stderr.get(name)
            lines.append(f"    {name}: {value:.6g}" + (f" +/- {error:.3g}" if error is not None else ""))
        return "\n".join(lines)

    def to_dict(self, include_samples: bool = True) -> dict:
        content = {
            "law": self.law,
            "params": self.params,
            "stderr": self.stderr,
            "stderr_note": self.stderr_note,
            "intervals": self.intervals,
            "confidence": self.confidence,
            "objective": self.objective,
            "objective_name": self.objective_name,
            "n_points": self.n_points,
            "n_free": self.n_free,
            "converged": self.converged,
            "message": self.message,
            "rss": self.rss,
            "aic": self.aic,
            "bic": self.bic,
            "fixed": self.fixed,
            "bounds": self.bounds,
            "options": self.options,
            "starts": self.starts,
            "bootstrap": self.bootstrap,
            "extrapolation": self.extrapolation,
            "data": self.data,
            "provenance": self.provenance,
        }
        if not include_samples and self.bootstrap:
            content["bootstrap"] = {key: value for key, value in self.bootstrap.items() if key != "samples"}
        return _jsonable(content)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, content: dict) -> "FitResult":
        names = {f for f in cls.__dataclass_fields__ if f not in ("lmfit_result", "residuals", "table")}
        missing = {"law", "params"} - set(content)
        if missing:
            raise ValueError(f"not a fit file: keys {sorted(missing)} are missing")
        values = {key: content.get(key) for key in names}
        defaults = {"stderr": {}, "stderr_note": "", "objective": math.nan, "objective_name": "", "n_points": 0,
                    "n_free": 0, "converged": False, "message": "", "rss": math.nan, "aic": math.nan, "bic": math.nan,
                    "fixed": {}, "bounds": {}, "options": {}, "starts": {}, "data": {}, "provenance": {},
                    "confidence": DEFAULT_CONFIDENCE}
        for key, default in defaults.items():
            if values.get(key) is None:
                values[key] = default
        values["params"] = {name: float(value) for name, value in content["params"].items()}
        return cls(**values)


def load_fit(path: str | Path) -> FitResult:
    """Read a fit JSON written by `FitResult.save` (or `qid fit --out`); the law must be registered."""
    path = Path(path)
    content = read_fit_file(path)
    try:
        result = FitResult.from_dict(content)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    law = get_law(result.law)
    missing = set(law.parameters) - set(result.params)
    if missing:
        raise ValueError(f"{path}: parameters {sorted(missing)} of law {law.name} are missing")
    return result


def _jsonable(value):
    """numpy scalars/arrays to Python; non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(item) for item in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# --- preparing the inputs ---------------------------------------------------------------------------------


def prepare_data(law: Law, data, space: str = "log", n_free: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Check a table (or CSV path) for a fit of `law` and describe it: (table, {"path", "sha256", ...}).

    The table must name the law's variables (N, D, P) and its response (qid or loss) as columns, all finite;
    the variables must be > 0 (the laws raise them to powers), and so must the response in log space.
    """
    if isinstance(data, (str, Path)):
        path = Path(data)
        source = str(path)
        table = load_table(path)
        description = {"path": source, "sha256": file_sha256(path)}
    elif isinstance(data, pd.DataFrame):
        table = data
        source = data.attrs.get("source", "table")
        # attrs name the file a table was read from; they survive subsetting, so that file's hash is kept only
        # as `source_sha256`, and `sha256` is always that of the points actually fitted.
        description = {"path": None, "source_path": data.attrs.get("source"), "source_sha256": data.attrs.get("sha256")}
    else:
        raise TypeError(f"data must be a CSV path or a pandas DataFrame, not {type(data).__name__}")
    columns = [*law.variables, law.response]
    positive = [*law.variables] + ([law.response] if space == "log" else [])
    check_table(table, source, required=columns, positive=positive, finite=columns)
    table = table[columns].astype(float).reset_index(drop=True)
    if "sha256" not in description:  # an in-memory table
        description["sha256"] = _table_sha256(table)
        description["sha256_of"] = "the fitted columns written as CSV (17 significant digits)"
    description["n_points"] = len(table)
    description["columns"] = columns
    if n_free is not None and len(table) <= n_free:
        raise DataError(
            f"{source}: {len(table)} data point(s) for {n_free} free parameter(s) of law {law.name}; "
            f"a fit needs more points than free parameters"
        )
    return table, description


def _table_sha256(table: pd.DataFrame) -> str:
    import hashlib

    buffer = StringIO()
    table.to_csv(buffer, index=False, float_format="%.17g")
    return hashlib.sha256(buffer.getvalue().encode()).hexdigest()


def resolve_bounds(law: Law, bounds: dict | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Lower and upper bounds per parameter: the law's defaults updated by `bounds` ({name: (min, max)})."""
    merged = dict(law.bounds)
    for name, pair in (bounds or {}).items():
        if name not in law.parameters:
            raise ValueError(f"bounds given for {name!r}, which is not a parameter of law {law.name} ({', '.join(law.parameters)})")
        merged[name] = tuple(pair)
    lower, upper = {}, {}
    for name in law.parameters:
        low, high = merged.get(name, (None, None))
        lower[name] = -np.inf if low is None else float(low)
        upper[name] = np.inf if high is None else float(high)
        if not lower[name] < upper[name]:
            raise ValueError(f"law {law.name}: bounds of {name} are empty ({low}, {high})")
    return lower, upper


def default_log_parameters(law: Law, bounds: dict | None = None) -> tuple[str, ...]:
    """Parameters searched as logarithms: positive scale parameters (lower bound ≥ 0) with no upper bound."""
    lower, upper = resolve_bounds(law, bounds)
    return tuple(name for name in law.parameters if lower[name] >= 0 and not np.isfinite(upper[name]))


def start_grid(law: Law, free: list[str] | None = None, log_names=None, bounds: dict | None = None) -> dict[str, np.ndarray]:
    """The start grid (natural units) for the free parameters: START_GRIDS[law] when it covers them, else a default."""
    free = list(law.parameters) if free is None else list(free)
    log_names = set(default_log_parameters(law, bounds) if log_names is None else log_names)
    registered = START_GRIDS.get(law.name, {})
    lower, upper = resolve_bounds(law, bounds)
    grid = {}
    for name in free:
        if name in registered:
            grid[name] = np.asarray(registered[name], dtype=float)
        elif name in log_names:
            grid[name] = np.exp(_DEFAULT_LOG_GRID)
        elif np.isfinite(lower[name]) and np.isfinite(upper[name]):
            grid[name] = np.linspace(lower[name], upper[name], 5)
        elif np.isfinite(lower[name]):
            grid[name] = lower[name] + np.arange(0.0, 2.01, 0.5)
        elif np.isfinite(upper[name]):
            grid[name] = upper[name] - np.arange(0.0, 2.01, 0.5)
        else:
            grid[name] = _DEFAULT_UNBOUNDED_GRID.copy()
    return grid


def make_parameters(law: Law, values: dict[str, float] | None = None, fixed: dict | None = None,
                    bounds: dict | None = None, log_parameters=None) -> lmfit.Parameters:
    """lmfit Parameters for a law: bounds and fixed values as data; a log-searched parameter `A` becomes a
    varying `log_A` and `A = exp(log_A)` (so lmfit reports both, with propagated errors)."""
    fixed = dict(fixed or {})
    lower, upper = resolve_bounds(law, bounds)
    log_names = set(default_log_parameters(law, bounds) if log_parameters is None else log_parameters)
    values = dict(values or {})
    parameters = lmfit.Parameters()
    for name in law.parameters:
        if name in fixed:
            parameters.add(name, value=float(fixed[name]), vary=False)
            continue
        value = values.get(name)
        if name in log_names:
            if f"log_{name}" in law.parameters:
                raise ValueError(f"law {law.name}: cannot search {name} in logs, log_{name} is already a parameter")
            low = math.log(lower[name]) if lower[name] > 0 else -np.inf
            high = math.log(upper[name]) if np.isfinite(upper[name]) else np.inf
            log_value = math.log(value) if value is not None and value > 0 else 0.0
            parameters.add(f"log_{name}", value=log_value, min=low, max=high)
            parameters.add(name, expr=f"exp(log_{name})")
        else:
            start = value if value is not None else _finite_midpoint(lower[name], upper[name])
            parameters.add(name, value=float(start), min=lower[name], max=upper[name])
    return parameters


def _finite_midpoint(low: float, high: float) -> float:
    if np.isfinite(low) and np.isfinite(high):
        return 0.5 * (low + high)
    if np.isfinite(low):
        return low + 1.0
    if np.isfinite(high):
        return high - 1.0
    return 0.0


def _validate_options(loss, delta, space, starts, bootstrap, confidence, screen):
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}; use one of {', '.join(SPACES)}")
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
        raise ValueError(f"Huber delta must be a finite number > 0, got {delta!r}")
    explicit = isinstance(starts, (list, tuple)) and len(starts) > 0 and all(isinstance(item, dict) for item in starts)
    if not (explicit or starts == "grid" or (isinstance(starts, (int, np.integer)) and not isinstance(starts, bool) and starts >= 1)):
        raise ValueError(f"starts must be 'grid', a positive number of random starts or a list of {{name: value}} starts, got {starts!r}")
    if not (isinstance(bootstrap, (int, np.integer)) and bootstrap >= 0):
        raise ValueError(f"bootstrap must be a number of replicates >= 0, got {bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    if screen is not None and not (isinstance(screen, (int, np.integer)) and screen >= 1):
        raise ValueError(f"screen must be a positive number of starts, got {screen!r}")


def _build_problem(law, table, loss, delta, space, fixed, bounds, log_parameters):
    lower, upper = resolve_bounds(law, bounds)
    for name, value in fixed.items():
        if not lower[name] <= value <= upper[name]:
            raise ValueError(f"fixed {name} = {value} lies outside its bounds ({lower[name]}, {upper[name]})")
    log_names = set(default_log_parameters(law, bounds) if log_parameters is None else log_parameters)
    unknown = log_names - set(law.parameters)
    if unknown:
        raise ValueError(f"log_parameters {sorted(unknown)} are not parameters of law {law.name}")
    for name in log_names:
        if lower[name] < 0:
            raise ValueError(f"{name} can be searched in logs only if its lower bound is >= 0, not {lower[name]}")
    free = [name for name in law.parameters if name not in fixed]
    variables = {name: table[name].to_numpy(float) for name in law.variables}
    return _Problem(law, variables, table[law.response].to_numpy(float), loss, delta, space, free,
                    fixed, log_names & set(free), lower, upper)


def _starting_points(problem: _Problem, starts, grid, seed) -> np.ndarray:
    """Start points in search coordinates: the full grid, `starts` seeded uniform draws in the grid's box, or
    the given list of {name: value} points (e.g. an earlier fit's parameters)."""
    if isinstance(starts, (list, tuple)):
        points = []
        for point in starts:
            missing = set(problem.free) - set(point)
            if missing:
                raise ValueError(f"a start point lacks {sorted(missing)}")
            points.append(problem.search(np.array([float(point[name]) for name in problem.free])))
        return np.array(points)
    grid_values = start_grid(problem.law, problem.free, {n for n, is_log in zip(problem.free, problem.is_log) if is_log})
    if grid:
        unknown = set(grid) - set(problem.free)
        if unknown:
            raise ValueError(f"grid given for {sorted(unknown)}, which are not free parameters of {problem.law.name}")
        grid_values.update({name: np.atleast_1d(np.asarray(values, dtype=float)) for name, values in grid.items()})
    axes = []
    for name, is_log in zip(problem.free, problem.is_log):
        values = np.asarray(grid_values[name], dtype=float)
        if is_log and np.any(values <= 0):
            raise ValueError(f"grid of {name} must be > 0: it is searched in logs")
        axes.append(np.log(values) if is_log else values)
    axes = [np.clip(axis, low, high) for axis, (low, high) in zip(axes, problem.bounds)]
    if starts == "grid":
        size = math.prod(len(axis) for axis in axes)
        if size > MAX_GRID_STARTS:
            raise ValueError(f"the start grid has {size} points (> {MAX_GRID_STARTS}); use random starts (starts=N) instead")
        return np.array(list(itertools.product(*axes)), dtype=float).reshape(size, len(axes))
    rng = np.random.default_rng(seed)
    low = np.array([axis.min() for axis in axes])
    high = np.array([axis.max() for axis in axes])
    return rng.uniform(low, high, size=(int(starts), len(axes)))


def _polish(problem: _Problem, theta: np.ndarray, max_iterations: int | None, start: np.ndarray | None = None):
    """Restart lmfit's Minimizer (least_squares, same loss) from θ; returns (θ, MinimizerResult or None, message).

    `start` (the grid point the search began from) is recorded as lmfit's initial value, for the report."""
    start_values = problem.params(theta)
    parameters = make_parameters(problem.law, start_values, fixed=problem.fixed,
                                 bounds={name: (None if not np.isfinite(lo) else lo, None if not np.isfinite(hi) else hi)
                                         for name, lo, hi in _natural_bounds(problem)},
                                 log_parameters=[n for n, is_log in zip(problem.free, problem.is_log) if is_log])
    search_names = [f"log_{n}" if is_log else n for n, is_log in zip(problem.free, problem.is_log)]
    for name, value in zip(search_names, theta):
        parameters[name].set(value=float(value))

    def theta_of(pars):
        return np.array([pars[name].value for name in search_names])

    def residual(pars):
        return problem.residuals(theta_of(pars))

    def jacobian(pars):
        with np.errstate(all="ignore"):
            return problem.residual_jacobian(theta_of(pars))[1].T

    keywords = {"loss": "linear"} if problem.loss == "least_squares" else {"loss": "huber", "f_scale": problem.delta}
    minimizer = lmfit.Minimizer(residual, parameters, nan_policy="raise")
    max_nfev = max_iterations if max_iterations is not None else None
    try:
        result = minimizer.minimize(method="least_squares", Dfun=jacobian, max_nfev=max_nfev,
                                    ftol=POLISH_TOLERANCE, xtol=POLISH_TOLERANCE, gtol=POLISH_TOLERANCE, **keywords)
    except ValueError as error:  # NaN residuals
        return theta, None, f"lmfit polish failed: {error}"
    if start is not None:
        for name, value in zip(search_names, start):
            result.params[name].init_value = float(value)
            result.init_values[name] = float(value)
    return theta_of(result.params), result, result.message


def _natural_bounds(problem: _Problem):
    for name, is_log, (low, high) in zip(problem.free, problem.is_log, problem.bounds):
        if is_log:
            yield name, (math.exp(low) if np.isfinite(low) else 0.0), (math.exp(high) if np.isfinite(high) else np.inf)
        else:
            yield name, low, high


def _with_one_blas_thread(function):
    """Decorator: run `function` inside single_threaded_blas() (see there for why)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return function(*args, **kwargs)

    return wrapper


@_with_one_blas_thread
def fit_law(law: Law | str, data, *, loss: str = "least_squares", delta: float = DEFAULT_DELTA, space: str = "log",
            starts: str | int = "grid", grid: dict | None = None, screen: int | None = None,
            fixed: dict[str, float] | None = None, bounds: dict | None = None, log_parameters=None,
            bootstrap: int = 0, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE,
            holdout: tuple[str, ...] | list[str] = (), holdout_top: int = 1,
            max_iterations: int | None = None, allow_failure: bool = False, keep_table: bool = True) -> FitResult:
    """Fit a registered law (or a `Law`) to a table with columns named after its variables and response.

    Options (all keyword):
    loss: 'least_squares' (sum of squared residuals) or 'huber' (SUM of Huber_δ, δ = `delta`);
    space: 'log' (residual log y − log ŷ; default) or 'linear' (y − ŷ);
    starts: 'grid' (every point of START_GRIDS[law] or `grid`), N seeded random starts in the grid's box, or a
    list of {name: value} start points (e.g. [earlier_fit.params]);
    screen: run the local optimiser only from the `screen` starts with the lowest objective;
    fixed: {name: value} held constant; bounds: {name: (min, max)} overriding the law's; log_parameters:
    names searched as logarithms (default: positive parameters without an upper bound);
    bootstrap: replicates resampling the points (seeded by `seed`) for percentile intervals at `confidence`;
    holdout: variables ('N', 'D') whose `holdout_top` largest distinct values are held out and predicted;
    max_iterations: cap on L-BFGS iterations per start and on lmfit's evaluations (None: no cap);
    keep_table: keep the fitted table on the result (`result.table`; never saved).
    A fit that fails raises FitError, unless allow_failure=True (then `converged` is False).
    """
    began = time.perf_counter()
    law = get_law(law) if isinstance(law, str) else law
    _validate_options(loss, delta, space, starts, bootstrap, confidence, screen)
    fixed = {name: float(value) for name, value in (fixed or {}).items()}
    unknown = set(fixed) - set(law.parameters)
    if unknown:
        raise ValueError(f"fixed {sorted(unknown)}: not parameters of law {law.name} ({', '.join(law.parameters)})")
    n_free = len(law.parameters) - len(fixed)
    if n_free == 0:
        raise ValueError(f"every parameter of law {law.name} is fixed: nothing to fit")
    table, description = prepare_data(law, data, space, n_free)
    problem = _build_problem(law, table, loss, delta, space, fixed, bounds, log_parameters)

    # 1. multi-start search
    thetas = _starting_points(problem, starts, grid, seed)
    screened_values = problem.batch_values(thetas)
    finite = np.isfinite(screened_values)
    order = np.argsort(np.where(finite, screened_values, np.inf), kind="stable")
    order = order[: int(finite.sum())]
    if screen is not None:
        order = order[:screen]
    if len(order) == 0:
        raise FitError(f"law {law.name}: the objective is not finite at any start (predictions <= 0 in log space?)")
    problem.choose_derivative_method(thetas[order[0]])
    best, best_start, n_success, end_values, end_points = None, None, 0, [], []
    for index in order:
        run = problem.local_fit(thetas[index], max_iterations)
        end_values.append(float(run.fun) if np.isfinite(run.fun) else np.inf)
        end_points.append(run.x)
        n_success += bool(run.success)
    # refine the best end points to tight tolerances; keep the best refined run
    for position in np.argsort(end_values, kind="stable")[:REFINED_STARTS]:
        if not np.isfinite(end_values[position]):
            break
        run = problem.local_fit(end_points[position], max_iterations, tight=True)
        if np.isfinite(run.fun) and (best is None or run.fun < best.fun):
            best, best_start = run, thetas[order[position]]
    search_seconds = time.perf_counter() - began

    # 2. polish with lmfit and judge convergence
    if best is None:
        theta, lmfit_result, message = thetas[order[0]], None, "no start reached a finite objective"
    else:
        theta, lmfit_result, message = _polish(problem, best.x, max_iterations, start=best_start)
    final_value = problem.value(theta)
    converged = bool(
        best is not None and lmfit_result is not None and lmfit_result.success and not lmfit_result.aborted
        and np.isfinite(final_value) and final_value <= best.fun + 1e-8 * abs(best.fun) + 1e-24
    )
    if best is not None and lmfit_result is not None and not converged and np.isfinite(final_value) and final_value > best.fun:
        message = f"{message}; lmfit's polish ended above the best start ({final_value:.6g} > {best.fun:.6g})"

    residuals = problem.residuals(theta)
    n_points = len(table)
    rss = float(residuals @ residuals) if np.all(np.isfinite(residuals)) else math.nan
    aic = n_points * math.log(rss / n_points) + 2 * n_free if rss > 0 else math.nan
    bic = n_points * math.log(rss / n_points) + math.log(n_points) * n_free if rss > 0 else math.nan
    params = problem.params(theta)
    params = {name: params[name] for name in law.parameters}
    stderr, stderr_note = _standard_errors(law, problem, lmfit_result, converged)
    lower, upper = resolve_bounds(law, bounds)

    result = FitResult(
        law=law.name, params=params, stderr=stderr, stderr_note=stderr_note, objective=final_value,
        objective_name=objective_description(loss, delta, space), n_points=n_points, n_free=n_free,
        converged=converged, message=str(message), rss=rss, aic=aic, bic=bic, fixed=fixed,
        bounds={name: [_none_if_infinite(lower[name]), _none_if_infinite(upper[name])] for name in law.parameters},
        options={"loss": loss, "delta": delta if loss == "huber" else None, "space": space, "starts": starts,
                 "screen": screen, "seed": seed, "bootstrap": bootstrap, "confidence": confidence,
                 "log_parameters": sorted(n for n, is_log in zip(problem.free, problem.is_log) if is_log),
                 "grid": {name: list(values) for name, values in grid.items()} if grid else None,
                 "holdout": list(holdout), "holdout_top": holdout_top, "max_iterations": max_iterations,
                 "derivatives": problem.derivative_method},
        starts={"n_grid": len(thetas), "n_run": len(order), "n_success": n_success,
                "best_start": problem.params(best_start) if best_start is not None else None,
                "n_reaching_best": int(np.sum(np.asarray(end_values) <= final_value + 1e-6 * abs(final_value) + 1e-24)),
                "seconds": round(search_seconds, 3)},
        data=description, confidence=confidence, lmfit_result=lmfit_result, residuals=residuals,
        table=table if keep_table else None,
    )
    if converged and bootstrap:
        result.bootstrap, result.intervals = _bootstrap(problem, theta, table, bootstrap, seed, confidence, max_iterations)
    if converged:
        options = dict(loss=loss, delta=delta, space=space, starts=starts, grid=grid, screen=screen, fixed=fixed,
                       bounds=bounds, log_parameters=log_parameters, seed=seed, max_iterations=max_iterations)
        result.extrapolation = {variable: extrapolation_error(law, table, variable, top=holdout_top, **options)
                                for variable in holdout} or None
    result.provenance = {"created": utc_now(), "git_commit": git_commit(), "package_versions": package_versions(),
                         "seconds": round(time.perf_counter() - began, 3)}
    if not converged and not allow_failure:
        raise FitError(f"fit of law {law.name} did not converge: {result.message}", result)
    return result


def _none_if_infinite(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _standard_errors(law: Law, problem: _Problem, lmfit_result, converged: bool):
    names = law.parameters
    if problem.loss == "huber":
        if lmfit_result is not None:  # lmfit's covariance here is not that of the Huber objective: hide it
            for parameter in lmfit_result.params.values():
                parameter.stderr, parameter.correl = None, None
            lmfit_result.errorbars, lmfit_result.covar = False, None
        return ({name: None for name in names},
                "no covariance standard errors for a Huber objective (its curvature comes from the few points "
                "within +/-delta); use the bootstrap intervals")
    if not converged or lmfit_result is None or not lmfit_result.errorbars:
        return ({name: None for name in names},
                "lmfit could not estimate the covariance (singular Jacobian, a parameter at a bound, or no convergence)")
    stderr = {}
    for name in names:
        parameter = lmfit_result.params[name]
        stderr[name] = None if (not parameter.vary and parameter.expr is None) or parameter.stderr is None else float(parameter.stderr)
    return stderr, ("lmfit covariance standard errors (linearised at the optimum, scaled by the reduced chi-square); "
                    "fixed parameters have none")


def _bootstrap(problem: _Problem, theta: np.ndarray, table: pd.DataFrame, replicates: int, seed: int,
               confidence: float, max_iterations: int | None):
    """Resample the points with replacement `replicates` times (generator seeded by `seed`), refit each
    from the full-data optimum, and return ({samples, stderr, ...}, percentile intervals)."""
    rng = np.random.default_rng(seed)
    n = len(table)
    samples, failed = [], 0
    variables = problem.variables
    response = problem.response
    for _ in range(replicates):
        index = rng.integers(0, n, size=n)
        problem.variables = {name: values[index] for name, values in variables.items()}
        problem.response = response[index]
        problem.log_response = np.log(problem.response) if problem.space == "log" else None
        run = problem.local_fit(theta, max_iterations, tight=True)
        if run.success and np.isfinite(run.fun):
            samples.append(problem.natural(run.x))
        else:
            failed += 1
    problem.variables, problem.response = variables, response
    problem.log_response = np.log(response) if problem.space == "log" else None
    samples = np.array(samples).reshape(-1, len(problem.free))
    tail = 100 * (1 - confidence) / 2
    intervals = {name: None for name in problem.law.parameters}
    stderr = {name: None for name in problem.law.parameters}
    if len(samples) >= 2:
        for j, name in enumerate(problem.free):
            low, high = np.percentile(samples[:, j], [tail, 100 - tail])
            intervals[name] = [float(low), float(high)]
            stderr[name] = float(np.std(samples[:, j], ddof=1))
    summary = {
        "n": replicates, "n_converged": len(samples), "n_failed": failed, "seed": seed,
        "method": "resample points with replacement; L-BFGS-B (tight tolerances) restarted from the full-data optimum; "
                  "percentile intervals",
        "stderr": stderr,
        "samples": {name: samples[:, j].tolist() for j, name in enumerate(problem.free)},
    }
    return summary, intervals


def extrapolation_error(law: Law | str, data, variable: str = "N", top: int = 1, **fit_options) -> dict:
    """Hold out the points at the `top` largest distinct values of `variable` (values within 1 % count as one),
    fit the rest, and compare the prediction for the held-out points with their measured values."""
    law = get_law(law) if isinstance(law, str) else law
    if variable not in law.variables:
        raise ValueError(f"law {law.name} does not depend on {variable}; cannot hold out its largest values")
    if not (isinstance(top, (int, np.integer)) and top >= 1):
        raise ValueError(f"top must be a positive number of distinct values, got {top!r}")
    fit_options = {key: value for key, value in fit_options.items() if key not in ("bootstrap", "holdout", "allow_failure")}
    table, _ = prepare_data(law, data, fit_options.get("space", "log"))
    values = np.sort(table[variable].unique())[::-1]
    distinct = [values[0]]
    for value in values[1:]:
        if value < distinct[-1] * (1 - DISTINCT_TOLERANCE):
            distinct.append(value)
    if len(distinct) <= top:
        raise ValueError(f"{variable} has only {len(distinct)} distinct value(s): nothing left to fit after holding out {top}")
    threshold = distinct[top - 1] * (1 - DISTINCT_TOLERANCE)
    held_out = table[variable] >= threshold
    train, test = table[~held_out], table[held_out]
    fit = fit_law(law, train, bootstrap=0, allow_failure=True, keep_table=False, **fit_options)
    predicted = np.asarray(fit.predict(**{name: test[name].to_numpy(float) for name in law.variables}), dtype=float)
    measured = test[law.response].to_numpy(float)
    with np.errstate(all="ignore"):
        log_error = np.log(measured) - np.log(predicted)
    relative = predicted / measured - 1
    return _jsonable({
        "variable": variable,
        "held_out_from": float(threshold),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "converged": fit.converged,
        "params": fit.params,
        "rms_log_error": float(np.sqrt(np.mean(log_error**2))),
        "mean_log_error": float(np.mean(log_error)),
        "max_abs_relative_error": float(np.max(np.abs(relative))),
        "mean_relative_error": float(np.mean(relative)),
    })


# --- validation helpers: synthetic data and interval coverage ---------------------------------------------


def synthetic_table(law: Law | str, params: dict[str, float], design: dict | pd.DataFrame, noise: float,
                    seed: int) -> pd.DataFrame:
    """Data drawn from a law: every combination of the `design` values ({variable: values}, or a table of
    variables), response = law · exp(noise · ε) with ε ~ N(0, 1) (multiplicative, log-normal noise)."""
    law = get_law(law) if isinstance(law, str) else law
    if isinstance(design, pd.DataFrame):
        table = design[list(law.variables)].astype(float).reset_index(drop=True)
    else:
        missing = [name for name in law.variables if name not in design]
        if missing:
            raise ValueError(f"design lacks values of {', '.join(missing)} for law {law.name}")
        grid = list(itertools.product(*(np.atleast_1d(design[name]) for name in law.variables)))
        table = pd.DataFrame(grid, columns=list(law.variables), dtype=float)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0 (standard deviation of the log response), got {noise}")
    rng = np.random.default_rng(seed)
    truth = np.asarray(law(params, **{name: table[name].to_numpy() for name in law.variables}), dtype=float)
    table[law.response] = truth * np.exp(noise * rng.standard_normal(len(table)))
    return table


def coverage_experiment(law: Law | str, params: dict[str, float], design, noise: float, repetitions: int,
                        bootstrap: int, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE, **fit_options) -> pd.DataFrame:
    """Draw `repetitions` data sets from known parameters, fit each, and record whether each parameter's
    interval covers the truth: the Wald interval from lmfit's standard error (on log θ for a log-searched
    parameter) and the bootstrap percentile interval. One row per (repetition, parameter)."""
    from scipy.stats import norm

    law = get_law(law) if isinstance(law, str) else law
    z = float(norm.ppf(0.5 + confidence / 2))
    rows = []
    for repetition in range(repetitions):
        data_seed, bootstrap_seed = seed * 1_000_003 + 2 * repetition, seed * 1_000_003 + 2 * repetition + 1
        table = synthetic_table(law, params, design, noise, data_seed)
        fit = fit_law(law, table, bootstrap=bootstrap, seed=bootstrap_seed, confidence=confidence,
                      allow_failure=True, keep_table=False, **fit_options)
        for name in law.parameters:
            if name in fit.fixed:
                continue
            truth, estimate, error = params[name], fit.params[name], fit.stderr.get(name)
            wald = (None, None)
            if fit.converged and error is not None:
                if name in fit.options["log_parameters"]:
                    wald = (estimate * math.exp(-z * error / estimate), estimate * math.exp(z * error / estimate))
                else:
                    wald = (estimate - z * error, estimate + z * error)
            interval = (fit.intervals or {}).get(name) or (None, None)
            rows.append({
                "repetition": repetition, "parameter": name, "truth": truth, "estimate": estimate,
                "converged": fit.converged, "stderr": error, "wald_low": wald[0], "wald_high": wald[1],
                "bootstrap_low": interval[0], "bootstrap_high": interval[1],
                "wald_covers": wald[0] is not None and wald[0] <= truth <= wald[1],
                "bootstrap_covers": interval[0] is not None and interval[0] <= truth <= interval[1],
            })
    return pd.DataFrame(rows)


# --- command line: `qid fit` ------------------------------------------------------------------------------

EXIT_NOT_CONVERGED = 1  # the fit ran but did not converge (bad inputs exit 2, as every qid command)


def _starts_argument(text: str):
    if text == "grid":
        return "grid"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"--starts must be 'grid' or a positive number of random starts, got {text!r}")
    return count


def _count_argument(name: str, minimum: int):
    def parse(text: str) -> int:
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        return value

    return parse


def add_fit_arguments(parser) -> None:
    from qid.cli import positive_number

    """The arguments of `qid fit` (declared here, next to what they control)."""
    parser.add_argument("--law", required=True, help="law name (see `qid laws`)")
    parser.add_argument("--data", required=True, help="CSV with the law's variables (N, D, P) and its response (qid or loss) as columns")
    parser.add_argument("--loss", choices=LOSSES, default="least_squares", help="objective (default least_squares; huber sums Huber_delta)")
    parser.add_argument("--delta", type=positive_number("--delta"), default=DEFAULT_DELTA, help="Huber threshold, in residual units (default 1e-3)")
    parser.add_argument("--space", choices=SPACES, default="log", help="residuals log y - log fit (default) or y - fit")
    parser.add_argument("--starts", type=_starts_argument, default="grid", help="'grid' (the law's start grid, default) or N seeded random starts")
    parser.add_argument("--screen", type=_count_argument("--screen", 1), default=None, help="run L-BFGS only from the K starts with the lowest objective")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE", help="hold a parameter fixed (repeatable)")
    parser.add_argument("--bootstrap", type=_count_argument("--bootstrap", 0), default=0, help="bootstrap replicates for intervals (default 0: none)")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="interval coverage (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random starts and bootstrap (default 0)")
    parser.add_argument("--holdout", action="append", choices=("N", "D", "P"), default=[],
                        help="also report the extrapolation error with the largest value of this variable held out (repeatable)")
    parser.add_argument("--max-iterations", type=_count_argument("--max-iterations", 1), default=None,
                        help="cap on L-BFGS iterations per start and on lmfit's evaluations (default: none)")
    parser.add_argument("--out", default=None, help="write the fit as JSON here (loadable by --params PATH and qid.fit.load_fit)")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON (without the bootstrap samples)")


def _parse_fixed(items: list[str]) -> dict[str, float]:
    fixed = {}
    for item in items:
        name, separator, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not separator or not name or not math.isfinite(value):
            raise ValueError(f"--fix expects NAME=VALUE with a finite number, got {item!r}")
        fixed[name.strip()] = value
    return fixed


def fit_from_arguments(args) -> int:
    """Handler of `qid fit`: exit 0 on a converged fit, 1 when it did not converge; input errors raise (exit 2)."""
    import sys

    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must be between 0 and 1, got {args.confidence}")
    try:
        result = fit_law(
            args.law, args.data, loss=args.loss, delta=args.delta, space=args.space, starts=args.starts,
            screen=args.screen, fixed=_parse_fixed(args.fix), bootstrap=args.bootstrap, seed=args.seed,
            confidence=args.confidence, holdout=tuple(dict.fromkeys(args.holdout)), max_iterations=args.max_iterations,
            keep_table=False,
        )
        failure = None
    except FitError as error:
        if error.result is None:
            raise ValueError(str(error)) from None
        result, failure = error.result, str(error)
    if args.out:
        result.save(args.out)
    if args.json:
        content = result.to_dict(include_samples=False)
        if args.out:
            content["saved_to"] = str(args.out)
        print(json.dumps(content, indent=2))
    else:
        print(result.fit_report())
        print(f"objective ({result.objective_name}) = {result.objective:.8g}; {result.n_points} points; converged: {result.converged}")
        if result.intervals:
            for name, interval in result.intervals.items():
                if interval is not None:
                    print(f"  {name}: {100 * result.confidence:g}% bootstrap interval [{interval[0]:.6g}, {interval[1]:.6g}]")
        for variable, error in (result.extrapolation or {}).items():
            print(f"  largest {variable} held out ({error['n_test']} points): rms log error {error['rms_log_error']:.4g}")
        if args.out:
            print(f"saved to {args.out}")
    if failure:
        print(f"qid fit: {failure}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return 0
