"""Bootstrap intervals of a fitted law's parameters: refit resampled data from the full-data optimum."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qid.fitproblem import Problem


def bootstrap_points(problem: Problem, theta: np.ndarray, table: pd.DataFrame, replicates: int, seed: int,
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

