"""Bootstrap intervals of a fitted law's parameters: refit resampled data from the full-data optimum.

Rows measured on the same training run share that run's quirks (its seed, its data order), so they are not
independent draws: resampling rows as if they were gives intervals that are too narrow. With `clusters`
(a label per row, e.g. the training run), each replicate draws whole clusters with replacement and keeps every
row of each drawn cluster. Without, rows are resampled one by one (for data that really are independent).
"""

from __future__ import annotations

import numpy as np

from qid.fitting.problem import Problem


def check_cluster_count(table, column: str, description: dict | None = None) -> None:
    """Refuse a cluster bootstrap over fewer than two clusters: every replicate would redraw the same data, and
    its intervals would have zero width (a precision the data do not have)."""
    labels = table[column]
    count = int(labels.nunique(dropna=False))
    if count < 2:
        source = (description or {}).get("path") or "table"
        raise ValueError(f"{source}: a bootstrap by {column!r} needs at least 2 clusters, the data hold {count} "
                         f"({column} = {labels.iloc[0]!r} on every row): its intervals would have zero width; "
                         "bootstrap rows instead (no --clusters) or add data from more clusters")


def resample_rows(rng: np.random.Generator, n_rows: int, clusters: np.ndarray | None) -> np.ndarray:
    """Row indices of one bootstrap replicate: rows drawn with replacement, or whole clusters with replacement."""
    if clusters is None:
        return rng.integers(0, n_rows, size=n_rows)
    labels, codes = np.unique(np.asarray(clusters), return_inverse=True)
    members = [np.flatnonzero(codes == code) for code in range(len(labels))]
    drawn = rng.integers(0, len(labels), size=len(labels))
    return np.concatenate([members[code] for code in drawn])


def bootstrap_points(problem: Problem, theta: np.ndarray, replicates: int, seed: int, confidence: float,
                     max_iterations: int | None, clusters: np.ndarray | None = None, refit=None,
                     responses: np.ndarray | None = None):
    """Resample `replicates` times (generator seeded by `seed`; by cluster when `clusters` is given), refit each
    replicate from the full-data optimum, and return ({samples, stderr, ...}, percentile intervals).

    `refit(problem, theta)` (optional) replaces the default refit (one tight L-BFGS-B run), e.g. the
    extra-scatter fit, which re-estimates its scatter in every replicate; it returns θ or None on failure.
    `responses` (optional, shape (replicates, rows)): the response of every row re-measured per replicate
    (e.g. QiD from resampled eval windows, `qid.fitting.errormodel.window_bootstrap_qid`); replicate b fits row
    values responses[b] on the rows it drew, so window noise and cluster scatter enter together.
    A replicate in which some variable of the law takes a single value cannot determine the parameters that
    scale with it; it is counted as failed (`n_unidentified`), not kept.
    """
    rng = np.random.default_rng(seed)
    n = len(problem.response)
    if responses is not None and np.shape(responses) != (replicates, n):
        raise ValueError(f"responses must have shape ({replicates}, {n}), got {np.shape(responses)}")
    samples, failed, unidentified = [], 0, 0
    for b in range(replicates):
        index = resample_rows(rng, n, clusters)
        replicate = problem.subset(index)
        if responses is not None:
            replicate.response = np.asarray(responses[b], dtype=float)[index]
            if replicate.space == "log":
                with np.errstate(all="ignore"):
                    replicate.log_response = np.log(replicate.response)
        if any(len(np.unique(replicate.variables[name])) < 2 for name in ("N", "D", "P") if name in replicate.variables):
            unidentified += 1
            continue
        if refit is not None:
            found = refit(replicate, theta)
        else:
            run = replicate.local_fit(theta, max_iterations, tight=True)
            found = run.x if run.success and np.isfinite(run.fun) else None
        if found is None:
            failed += 1
        else:
            samples.append(replicate.natural(found))
    samples = np.array(samples).reshape(-1, len(problem.free))
    tail = 100 * (1 - confidence) / 2
    intervals = {name: None for name in problem.law.parameters}
    stderr = {name: None for name in problem.law.parameters}
    if len(samples) >= 2:
        for j, name in enumerate(problem.free):
            low, high = np.percentile(samples[:, j], [tail, 100 - tail])
            intervals[name] = [float(low), float(high)]
            stderr[name] = float(np.std(samples[:, j], ddof=1))
    n_clusters = None if clusters is None else int(len(np.unique(np.asarray(clusters))))
    unit = "points" if clusters is None else f"clusters ({n_clusters}: every row of a drawn cluster kept)"
    summary = {
        "n": replicates, "n_converged": len(samples), "n_failed": failed, "n_unidentified": unidentified, "seed": seed,
        "responses_resampled": responses is not None,
        "resampled": "points" if clusters is None else "clusters", "n_clusters": n_clusters,
        "method": f"resample {unit} with replacement; refit from the full-data optimum; percentile intervals",
        "stderr": stderr,
        "samples": {name: samples[:, j].tolist() for j, name in enumerate(problem.free)},
    }
    return summary, intervals
