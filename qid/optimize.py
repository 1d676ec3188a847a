"""Fitting any registered law to data (`fit_law`) with lmfit: several starts, least squares or Huber, bootstrap intervals.

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
import math
import time

import lmfit
import numpy as np
from threadpoolctl import threadpool_limits

from qid.bootstrap import bootstrap_points
from qid.fitio import FitResult, jsonable
from qid.fitproblem import (
    DEFAULT_CONFIDENCE,
    DEFAULT_DELTA,
    DISTINCT_TOLERANCE,
    LOSSES,
    MAX_GRID_STARTS,
    POLISH_TOLERANCE,
    REFINED_STARTS,
    SPACES,
    FitError,
    Problem,
    build_problem,
    default_log_parameters,
    objective_description,
    prepare_data,
    resolve_bounds,
)
from qid.laws import Law, get_law
from qid.provenance import git_commit, package_versions, utc_now

# --- BLAS threads ------------------------------------------------------------------------------------------
# scipy's L-BFGS-B calls BLAS on vectors of a few numbers; a multi-threaded OpenBLAS then spends far more time
# waking its threads than computing (measured: 35x slower on a loaded 2-core machine). Fits run with one
# BLAS thread (threadpoolctl).


@contextlib.contextmanager
def single_threaded_blas():
    """Run the enclosed code with one BLAS thread, restoring the previous setting afterwards."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


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


def _starting_points(problem: Problem, starts, grid, seed) -> np.ndarray:
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


def _polish(problem: Problem, theta: np.ndarray, max_iterations: int | None, start: np.ndarray | None = None):
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


def _natural_bounds(problem: Problem):
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
    problem = build_problem(law, table, loss, delta, space, fixed, bounds, log_parameters)

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
        result.bootstrap, result.intervals = bootstrap_points(problem, theta, table, bootstrap, seed, confidence, max_iterations)
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


def _standard_errors(law: Law, problem: Problem, lmfit_result, converged: bool):
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
    return jsonable({
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

