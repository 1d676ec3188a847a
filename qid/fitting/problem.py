"""A fit problem stated once: the data checked, the parameters' bounds, the residuals and the objective.

`build_problem` turns a law and a table into a `Problem` in *search coordinates* θ (the logarithm of a positive
scale parameter with no upper bound, the natural value otherwise). A `Problem` gives residuals (log y − log ŷ,
or y − ŷ), their Jacobian (an analytic gradient where one is registered, complex-step differentiation
otherwise), and the objective: the sum of squares, or the SUM of Huber_δ. `qid.fitting.optimize` searches it.
"""

from __future__ import annotations

import hashlib
import math
from io import StringIO
from pathlib import Path
from typing import Callable

import numpy as np

from qid.laws.registry import Law
from qid.common.provenance import file_sha256
from qid.common.csvtables import DataError, check_table, load_table

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


class FitError(RuntimeError):
    """A fit that did not converge; `error.result` holds the failed `qid.fitting.record.FitResult` for inspection.

    (Not annotated with that class: the record module imports this one, and the dependency runs one way.)"""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


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
    from qid.laws import registry as laws

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


class Problem:
    """One fit problem in the search coordinates θ (a logarithm for log-searched parameters).

    `errors` (optional): each row's standard error in response units. Residuals are then divided by it
    (in log space by errors / response, the delta method), so least squares is the Gaussian likelihood with
    those known variances; `set_standard_errors` changes them (the extra-scatter fit does, between rounds).
    """

    def __init__(self, law: Law, variables: dict, response: np.ndarray, loss: str, delta: float, space: str,
                 free: list[str], fixed: dict[str, float], log_names: set[str],
                 lower: dict[str, float], upper: dict[str, float], errors: np.ndarray | None = None):
        self.law, self.loss, self.delta, self.space = law, loss, delta, space
        self.variables = variables
        self.response = response
        self.log_response = np.log(response) if space == "log" else None
        self.errors = None if errors is None else np.asarray(errors, dtype=float)
        self.weights = None
        if self.errors is not None:
            self.set_standard_errors(self.errors)
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

    def set_standard_errors(self, errors: np.ndarray) -> None:
        """Weight the residuals by 1 / standard error (response units; converted to log units in log space)."""
        errors = np.asarray(errors, dtype=float)
        scale = errors / np.abs(self.response) if self.space == "log" else errors
        self.weights = 1.0 / scale

    def subset(self, index: np.ndarray) -> "Problem":
        """The same problem on rows `index` (repeats allowed): what a bootstrap replicate fits."""
        copy = object.__new__(Problem)
        copy.__dict__.update(self.__dict__)
        copy.variables = {name: values[index] for name, values in self.variables.items()}
        copy.response = self.response[index]
        copy.log_response = None if self.log_response is None else self.log_response[index]
        copy.errors = None if self.errors is None else self.errors[index]
        copy.weights = None if self.weights is None else self.weights[index]
        return copy

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
            residuals = self.log_response - np.log(prediction)
        else:
            residuals = self.response - prediction
        return residuals if self.weights is None else residuals * self.weights

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.residuals_from_prediction(self.predict(self.natural(theta)))

    def residual_jacobian(self, theta: np.ndarray):
        """(residuals (n,), d residual / d θ (k, n)). Callers silence floating-point warnings (np.errstate)."""
        values = self.natural(theta)
        prediction, jacobian = self.predict_with_jacobian(values)
        residuals = self.residuals_from_prediction(prediction)
        chain = np.where(self.is_log, -values, -1.0)  # dp/dθ = p for a log-searched parameter; dr/df = -1
        jacobian = jacobian * (chain[:, None] / prediction) if self.space == "log" else jacobian * chain[:, None]
        return residuals, jacobian if self.weights is None else jacobian * self.weights

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
        from scipy.optimize import minimize  # imported where used: `qid fit --help` reads this module's constants

        with np.errstate(all="ignore"):
            return minimize(self.value_and_gradient, theta0, jac=True, method="L-BFGS-B", bounds=self.bounds, options=options)


# --- the fit ----------------------------------------------------------------------------------------------


# --- preparing the inputs ---------------------------------------------------------------------------------


def prepare_data(law: Law, data, space: str = "log", n_free: int | None = None,
                 errors: str | None = None, keep: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """Check a table (or CSV path) for a fit of `law` and describe it: (table, {"path", "sha256", ...}).

    The table must name the law's variables (N, D, P) and its response (qid or loss) as columns, all finite;
    the variables must be > 0 (the laws raise them to powers), and so must the response in log space.
    `errors` names a column of standard errors of the response (finite, > 0), kept next to the response;
    `keep` names other columns carried along unchecked (e.g. the cluster labels of a bootstrap).
    """
    import pandas as pd  # imported where used: `qid fit --help` reads this module's constants only

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
    columns = [*law.variables, law.response] + ([errors] if errors else [])
    positive = [*law.variables] + ([law.response] if space == "log" else []) + ([errors] if errors else [])
    check_table(table, source, required=[*columns, *keep], positive=positive, finite=columns)
    carried = table[list(keep)].reset_index(drop=True)
    table = table[columns].astype(float).reset_index(drop=True)
    if "sha256" not in description:  # an in-memory table
        description["sha256"] = table_sha256(table)
        description["sha256_of"] = "the fitted columns written as CSV (17 significant digits)"
    description["n_points"] = len(table)
    description["columns"] = columns
    # The fitted range of each variable, so a prediction can say when it extrapolates (qid predict warns).
    description["ranges"] = {name: [float(table[name].min()), float(table[name].max())] for name in law.variables}
    for name in keep:
        table[name] = carried[name].to_numpy()
    if n_free is not None and len(table) <= n_free:
        raise DataError(
            f"{source}: {len(table)} data point(s) for {n_free} free parameter(s) of law {law.name}; "
            f"a fit needs more points than free parameters"
        )
    return table, description


def table_sha256(table: pd.DataFrame) -> str:
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


def build_problem(law, table, loss, delta, space, fixed, bounds, log_parameters, errors: str | None = None):
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
    return Problem(law, variables, table[law.response].to_numpy(float), loss, delta, space, free,
                   fixed, log_names & set(free), lower, upper,
                   errors=table[errors].to_numpy(float) if errors else None)

