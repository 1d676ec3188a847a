"""Where the fitter's local searches start: a grid per law (data), seeded random starts in the grid's box, or
given points; and lmfit `Parameters` built from a law (bounds and fixed values as data)."""

from __future__ import annotations

import itertools
import math

import lmfit
import numpy as np

from qid.fitting.problem import MAX_GRID_STARTS, Problem, default_log_parameters, resolve_bounds
from qid.laws.registry import Law

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
    "curved_unified": {  # k is QiD at D₀ = 1e6 tokens here, not a D^β prefactor
        "k": np.exp(np.arange(-10.0, 10.1, 5.0)),
        "alpha": np.arange(0.0, 2.01, 0.5),
        "beta": np.arange(0.0, 2.01, 0.5),
        "curvature": np.array([-0.4, -0.2, 0.0, 0.2]),
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



def starting_points(problem: Problem, starts, grid, seed) -> np.ndarray:
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


