"""The likelihood behind a fit with known per-row errors, its information criteria, and identification checks.

With a standard error σᵢ per row, least squares on residuals rᵢ/σᵢ is the Gaussian likelihood with those
known variances. Measured errors often miss part of the scatter (the law is not exact, or a variance
component was not measured), so an optional *extra relative scatter* τ adds (τ·ŷᵢ)² to each row's
variance (τ is a fraction of the prediction; in log space it is an additive log-scale variance τ²). τ is
estimated by maximum likelihood, profiled: for each τ the weights 1/√(σᵢ² + τ²ŷᵢ²) are refitted a few rounds
(ŷ from the previous round: iteratively reweighted least squares), and the τ with the smallest negative
log-likelihood wins (a bounded 1-D search in log τ, compared against τ = 0).

A law can fit every row and still not be determined by them: two parameters may trade off exactly (D constant
in the data: the prefactor and β are one number), a parameter may sit on a bound (the optimum lies outside
the allowed range), or the covariance may be singular. `identification_problems` says which, in sentences.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

from qid.fitting.problem import DISTINCT_TOLERANCE, Problem

SCATTER_ROUNDS = 3  # reweighting rounds per τ (the weights depend on ŷ; three rounds settle them to < 1e-3)
SCATTER_LOG_RANGE = (math.log(1e-4), math.log(10.0))  # τ searched between 0.01 % and 1000 % of the prediction
BOUND_TOLERANCE = 1e-6  # a parameter within this relative distance of a finite bound counts as at the bound
RANK_TOLERANCE = 1e-9  # singular values below this fraction of the largest make the Jacobian rank-deficient


def negative_log_likelihood(problem: Problem, theta: np.ndarray) -> float:
    """−log L of the Gaussian model with the problem's current weights (1/σ, residual units): ½Σ(r² + log 2πσ²)."""
    residuals = problem.residuals(theta)
    if problem.weights is None or not np.all(np.isfinite(residuals)):
        return math.inf
    return float(0.5 * np.sum(residuals**2 + math.log(2 * math.pi) - 2 * np.log(problem.weights)))


def _reweight(problem: Problem, theta: np.ndarray, scatter: float) -> None:
    with np.errstate(all="ignore"):
        prediction = np.abs(np.asarray(problem.predict(problem.natural(theta)), dtype=float))
    if problem.space == "log":  # log-scale: Var(log y) = (σ/y)² + τ²; expressed back in response units
        relative = np.sqrt((problem.errors / np.abs(problem.response)) ** 2 + scatter**2)
        problem.set_standard_errors(relative * np.abs(problem.response))
    else:
        problem.set_standard_errors(np.sqrt(problem.errors**2 + (scatter * prediction) ** 2))


def fit_at_scatter(problem: Problem, theta: np.ndarray, scatter: float, max_iterations: int | None = None,
                   rounds: int = SCATTER_ROUNDS) -> tuple[np.ndarray | None, float]:
    """Refit at extra relative scatter τ = `scatter` (reweighting `rounds` times); returns (θ, −log L)."""
    for _ in range(rounds):
        _reweight(problem, theta, scatter)
        run = problem.local_fit(theta, max_iterations, tight=True)
        if not np.isfinite(run.fun):
            return None, math.inf
        theta = run.x
    _reweight(problem, theta, scatter)
    return theta, negative_log_likelihood(problem, theta)


def fit_extra_scatter(problem: Problem, theta: np.ndarray, max_iterations: int | None = None) -> tuple[np.ndarray, float]:
    """Maximum-likelihood τ (profiled) and the parameters at it; leaves the problem weighted at that τ."""
    if problem.errors is None:
        raise ValueError("extra scatter needs per-row standard errors (errors=COLUMN)")
    theta_zero, nll_zero = fit_at_scatter(problem, theta, 0.0, max_iterations, rounds=1)

    def profile(log_scatter: float) -> float:
        return fit_at_scatter(problem, theta_zero if theta_zero is not None else theta, math.exp(log_scatter),
                              max_iterations)[1]

    search = minimize_scalar(profile, bounds=SCATTER_LOG_RANGE, method="bounded", options={"xatol": 1e-3})
    scatter = math.exp(search.x) if np.isfinite(search.fun) and search.fun < nll_zero else 0.0
    start = theta_zero if theta_zero is not None else theta
    found, _ = fit_at_scatter(problem, start, scatter, max_iterations, rounds=SCATTER_ROUNDS if scatter else 1)
    return (found if found is not None else start), scatter


def refit_at_fixed_scatter(scatter: float, max_iterations: int | None = None):
    """A bootstrap refit: τ held at the full-data estimate, weights recomputed from the replicate's predictions."""

    def refit(replicate: Problem, theta: np.ndarray):
        found, value = fit_at_scatter(replicate, theta, scatter, max_iterations, rounds=2 if scatter else 1)
        return found if np.isfinite(value) else None

    return refit


def information_criteria(log_likelihood: float, n_points: int, n_parameters: int) -> dict[str, float]:
    """AIC, AICc (small-sample corrected; infinite when n ≤ k + 1) and BIC from a log-likelihood."""
    aic = -2 * log_likelihood + 2 * n_parameters
    denominator = n_points - n_parameters - 1
    aicc = aic + 2 * n_parameters * (n_parameters + 1) / denominator if denominator > 0 else math.inf
    return {"aic": aic, "aicc": aicc, "bic": -2 * log_likelihood + math.log(n_points) * n_parameters}


def distinct_count(values: np.ndarray, tolerance: float = DISTINCT_TOLERANCE) -> int:
    """Number of distinct positive values, two within `tolerance` (relative) counting as one."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    count, last = 0, None
    for value in ordered:
        if last is None or value < last * (1 - tolerance):
            count, last = count + 1, value
    return count


def identification_problems(problem: Problem, theta: np.ndarray, lower: dict, upper: dict,
                            covariance_estimated: bool | None) -> list[str]:
    """Reasons the fitted parameters are not determined by the data (empty list: identified)."""
    problems = []
    # A variable held at one value is the usual reason for a rank-deficient Jacobian, and then it is named; one whose
    # parameters are all fixed (e.g. P_a at 16 bits with gamma_a fixed) leaves the free parameters determined.
    single_valued = [f"{name} takes one value only ({float(values[0]):.4g}): the parameters that scale with {name} "
                     "trade off against the prefactor"
                     for name, values in problem.variables.items() if distinct_count(values) < 2]
    with np.errstate(all="ignore"):
        _, jacobian = problem.residual_jacobian(theta)
    finite = bool(np.all(np.isfinite(jacobian)))
    rank = len(problem.free)
    if finite:
        singular = np.linalg.svd(jacobian, compute_uv=False)
        rank = int(np.sum(singular > RANK_TOLERANCE * singular.max())) if singular.size and singular.max() > 0 else 0
    if not finite or rank < len(problem.free):
        problems += single_valued
    values = problem.natural(theta)
    for name, value, is_log in zip(problem.free, values, problem.is_log):
        for side, bound in (("lower", lower[name]), ("upper", upper[name])):
            if is_log and bound == 0:  # searched as a logarithm: a positive scale never reaches 0, however small
                continue
            if np.isfinite(bound) and abs(value - bound) <= BOUND_TOLERANCE * max(1.0, abs(bound)):
                problems.append(f"{name} = {value:.6g} sits at its {side} bound: the data's optimum lies outside the allowed range")
    if finite:
        if rank < len(problem.free):
            problems.append(f"the Jacobian has rank {rank} < {len(problem.free)} free parameters: "
                            "some combination of parameters is not determined")
    else:
        problems.append("the Jacobian is not finite at the optimum")
    if covariance_estimated is False:
        problems.append("lmfit could not estimate the covariance (singular at the optimum)")
    return problems
