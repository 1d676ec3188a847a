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
`load_fit`; `qid.laws.registry.load_fit_parameters` reads the same files.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings

import lmfit
import numpy as np
from threadpoolctl import threadpool_limits

from qid.fitting.bootstrap import bootstrap_points, check_cluster_count
from qid.fitting.record import FitResult, jsonable
from qid.fitting.problem import (
    DEFAULT_CONFIDENCE,
    DEFAULT_DELTA,
    DISTINCT_TOLERANCE,
    LOSSES,
    POLISH_TOLERANCE,
    REFINED_STARTS,
    SPACES,
    FitError,
    Problem,
    build_problem,
    objective_description,
    prepare_data,
    resolve_bounds,
)
from qid.fitting.curvefit import curve_grid, curve_problem
from qid.laws.curves import is_curve_law
from qid.laws.registry import Law, get_law
from qid.fitting.likelihood import (
    fit_extra_scatter,
    identification_problems,
    information_criteria,
    negative_log_likelihood,
    refit_at_fixed_scatter,
)
from qid.common.provenance import git_commit, package_versions, utc_now
from qid.fitting.starts import make_parameters, starting_points

# --- BLAS threads ------------------------------------------------------------------------------------------
# scipy's L-BFGS-B calls BLAS on vectors of a few numbers; a multi-threaded OpenBLAS then spends far more time
# waking its threads than computing (measured: 35x slower on a loaded 2-core machine). Fits run with one
# BLAS thread (threadpoolctl).


@contextlib.contextmanager
def single_threaded_blas():
    """Run the enclosed code with one BLAS thread, restoring the previous setting afterwards."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


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
    # With known per-row errors the residuals are already in units of σ: the covariance must not be rescaled
    # by the reduced chi-square (lmfit's default, right only when the scale of the errors is unknown).
    minimizer = lmfit.Minimizer(residual, parameters, nan_policy="raise", scale_covar=problem.weights is None)
    max_nfev = max_iterations if max_iterations is not None else None
    try:
        with warnings.catch_warnings():  # a negative covariance diagonal is reported by identification, not printed
            warnings.simplefilter("ignore", RuntimeWarning)
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
            max_iterations: int | None = None, allow_failure: bool = False, keep_table: bool = True,
            errors: str | None = None, extra_scatter: bool = False, clusters: str | None = None,
            response_replicates: np.ndarray | None = None) -> FitResult:
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
    keep_table: keep the fitted table on the result (`result.table`; never saved);
    errors: a column of standard errors of the response: residuals are divided by them (the Gaussian
    likelihood with known variances; in linear space every row, zero and negative responses included, counts);
    extra_scatter: also fit a relative scatter τ beyond those errors (maximum likelihood; `qid.fitting.likelihood`);
    clusters: a column of cluster labels (e.g. the training run): the bootstrap resamples whole clusters;
    response_replicates: (bootstrap, rows) re-measured responses, one row of values per bootstrap replicate
    (e.g. QiD from resampled eval windows) used in place of the measured response in that replicate.
    The result says whether the parameters are identified (`identified`, `identification`); an unidentified
    fit is returned, not raised: callers decide (the CLI exits non-zero unless told to accept it).
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
    if extra_scatter and not errors:
        raise ValueError("extra_scatter needs per-row standard errors: give errors=COLUMN")
    if errors and loss != "least_squares":
        raise ValueError("per-row errors define a Gaussian likelihood: use loss='least_squares' with errors")
    if is_curve_law(law):  # a loss-curve law: the curve table becomes one problem over its runs (qid.fitting.curvefit)
        table, description, problem = curve_problem(law, data, loss, delta, space, fixed, bounds, log_parameters)
        grid = grid or curve_grid(law, table)
        clusters = clusters or "run"  # points of one curve share that run's noise: the bootstrap draws whole runs
    else:
        table, description = prepare_data(law, data, space, n_free, errors=errors, keep=(clusters,) if clusters else ())
        problem = build_problem(law, table, loss, delta, space, fixed, bounds, log_parameters, errors=errors)
    if bootstrap and clusters:
        check_cluster_count(table, clusters, description)

    # 1. multi-start search
    thetas = starting_points(problem, starts, grid, seed)
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
    scatter = None
    if extra_scatter and best is not None:
        scattered, scatter = fit_extra_scatter(problem, best.x, max_iterations)
        best = problem.local_fit(scattered, max_iterations, tight=True)
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
    n_estimated = n_free + (1 if extra_scatter else 0)
    if errors:  # the Gaussian likelihood with the known (and fitted extra) variances
        log_likelihood = -negative_log_likelihood(problem, theta)
        criteria = information_criteria(log_likelihood, n_points, n_estimated)
    else:  # unknown common variance, profiled out (constants dropped, as is usual for least squares)
        log_likelihood = None
        criteria = information_criteria(-0.5 * n_points * math.log(rss / n_points), n_points, n_free) if rss > 0 else {}
    aic, aicc, bic = (criteria.get(key, math.nan) for key in ("aic", "aicc", "bic"))
    params = problem.params(theta)
    params = {name: params[name] for name in law.parameters}
    stderr, stderr_note = _standard_errors(law, problem, lmfit_result, converged)
    lower, upper = resolve_bounds(law, bounds)
    covariance_estimated = None if loss == "huber" or lmfit_result is None else (
        bool(lmfit_result.errorbars) and all(stderr[name] is not None for name in problem.free))
    identification = identification_problems(problem, theta, lower, upper, covariance_estimated)

    result = FitResult(
        law=law.name, params=params, stderr=stderr, stderr_note=stderr_note, objective=final_value,
        objective_name=objective_description(loss, delta, space), n_points=n_points, n_free=n_free,
        converged=converged, message=str(message), rss=rss, aic=aic, bic=bic, aicc=aicc,
        log_likelihood=log_likelihood, extra_scatter=scatter, identified=not identification,
        identification=identification, fixed=fixed,
        bounds={name: [_none_if_infinite(lower[name]), _none_if_infinite(upper[name])] for name in law.parameters},
        options={"loss": loss, "delta": delta if loss == "huber" else None, "space": space, "starts": starts,
                 "screen": screen, "seed": seed, "bootstrap": bootstrap, "confidence": confidence,
                 "log_parameters": sorted(n for n, is_log in zip(problem.free, problem.is_log) if is_log),
                 "grid": {name: list(values) for name, values in grid.items()} if grid else None,
                 "holdout": list(holdout), "holdout_top": holdout_top, "max_iterations": max_iterations,
                 "derivatives": problem.derivative_method, "errors": errors, "extra_scatter": extra_scatter,
                 "clusters": clusters},
        starts={"n_grid": len(thetas), "n_run": len(order), "n_success": n_success,
                "best_start": problem.params(best_start) if best_start is not None else None,
                "n_reaching_best": int(np.sum(np.asarray(end_values) <= final_value + 1e-6 * abs(final_value) + 1e-24)),
                "seconds": round(search_seconds, 3)},
        data=description, confidence=confidence, lmfit_result=lmfit_result, residuals=residuals,
        table=table if keep_table else None,
    )
    if converged and bootstrap:
        refit = refit_at_fixed_scatter(scatter, max_iterations) if extra_scatter else None
        labels = table[clusters].to_numpy() if clusters else None
        result.bootstrap, result.intervals = bootstrap_points(problem, theta, bootstrap, seed, confidence,
                                                              max_iterations, clusters=labels, refit=refit,
                                                              responses=response_replicates)
        if extra_scatter:
            result.bootstrap["method"] += f"; extra scatter held at the full-data estimate {scatter:.4g}"
    if converged:
        options = dict(loss=loss, delta=delta, space=space, starts=starts, grid=grid, screen=screen, fixed=fixed,
                       bounds=bounds, log_parameters=log_parameters, seed=seed, max_iterations=max_iterations,
                       errors=errors, extra_scatter=extra_scatter)
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
        usable = parameter.stderr is not None and math.isfinite(parameter.stderr)  # NaN: a negative covariance diagonal
        stderr[name] = None if (not parameter.vary and parameter.expr is None) or not usable else float(parameter.stderr)
    if problem.weights is not None:
        return stderr, ("lmfit covariance standard errors from the known per-row errors (linearised at the optimum, "
                        "not rescaled by the reduced chi-square); fixed parameters have none")
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
    errors = fit_options.get("errors")
    table, _ = prepare_data(law, data, fit_options.get("space", "log"), errors=errors)
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
    standardized = (measured - predicted) / test[errors].to_numpy(float) if errors else None
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
        "rms_standardized_error": float(np.sqrt(np.mean(standardized**2))) if errors else None,
    })

