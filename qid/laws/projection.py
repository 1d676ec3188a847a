"""Projections from a law: training tokens to reach a QiD ("training level"), and where a quantized
model becomes worse than guessing uniformly over its vocabulary.
"""

from __future__ import annotations

import math

import numpy as np

from qid.laws.registry import Law

# Search range for the training-token solver: 1 token to 1e20 tokens (far beyond any projection in the book).
MIN_TOKENS = 1.0
MAX_TOKENS = 1e20


def tokens_to_reach_qid(law: Law, params: dict, qid: float, N: float, P: float | None = None) -> float:
    """Training tokens D at which the law's predicted QiD of a size-N model at P bits equals `qid`.

    Solved numerically in log D (any law increasing in D works, including a reader's own); returns
    math.inf where even 1e20 tokens stay below the threshold, and 0 where a single token already exceeds it.
    """
    if "D" not in law.variables:
        raise ValueError(f"law {law.name} does not depend on training tokens D")
    if law.response != "qid":
        raise ValueError(f"law {law.name} predicts {law.response}, not QiD")
    for name, value in (("qid", qid), ("N", N)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    variables = {"N": N, "P": P}

    def gap(log_tokens: float) -> float:
        return float(np.log(law(params, D=math.exp(log_tokens), **variables)) - math.log(qid))

    low, high = math.log(MIN_TOKENS), math.log(MAX_TOKENS)
    if gap(high) < 0:
        return math.inf
    if gap(low) > 0:
        return 0.0
    from scipy.optimize import brentq  # imported where needed: `qid predict` never solves for D

    return math.exp(brentq(gap, low, high, xtol=1e-12, rtol=1e-12))


def uniform_guess_loss(vocab_size: int) -> float:
    """Cross-entropy (nats) of a model that assigns every token of the vocabulary the same probability."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    return math.log(vocab_size)


def worse_than_uniform(loss16: np.ndarray, qid: np.ndarray, vocab_size: int) -> np.ndarray:
    """True where the quantized model's loss, Loss_16 + QiD, exceeds that of uniform guessing."""
    return np.asarray(loss16) + np.asarray(qid) > uniform_guess_loss(vocab_size)


def tokens_for_rows(law: Law, params_by_bits: dict, table) -> np.ndarray:
    """`tokens_to_reach_qid` for each row of a table with columns N, P, qid (e.g. Table 1).

    `params_by_bits` maps a bit width to the parameter set used for that row: the same set for every bit
    width for a unified law, one set per bit width for per-bit laws.
    """
    return np.array(
        [
            tokens_to_reach_qid(law, params_by_bits[int(row.P)], row.qid, N=row.N, P=row.P)
            for row in table.itertuples(index=False)
        ]
    )


# --- where projections stop making sense ------------------------------------------------------------------


def worse_than_uniform_crossing(loss16, qid, vocab_size: int, low: float = 1e6, high: float = 1e20) -> float:
    """Training tokens past which the quantized model is worse than a uniform guess: the smallest D above the
    critical data size (where Loss_16 + QiD is lowest) at which loss16(D) + qid(D) exceeds ln V (callables of D).

    Searching from the minimum matters: at small D the *16-bit* law alone exceeds ln V (an untrained model),
    and a scan from the left would report that instead. Returns math.inf if the sum stays below ln V up to
    `high`, and 0.0 if even its minimum lies above ln V (worse than uniform at every D)."""
    bound = uniform_guess_loss(vocab_size)
    start, lowest = critical_data_size(loss16, qid, low, high)
    if not math.isfinite(start):
        return math.inf
    if lowest > bound:
        return 0.0

    def gap(log_tokens: float) -> float:
        tokens = math.exp(log_tokens)
        return float(loss16(tokens) + qid(tokens) - bound)

    grid = np.logspace(math.log10(start), math.log10(high), 2001)
    above = np.flatnonzero(np.array([gap(math.log(tokens)) for tokens in grid]) > 0)
    if len(above) == 0:
        return math.inf
    first = max(int(above[0]), 1)
    from scipy.optimize import brentq

    return math.exp(brentq(gap, math.log(grid[first - 1]), math.log(grid[first]), xtol=1e-10))


def capped_qid(loss16: np.ndarray, qid: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(QiD capped at ln V − Loss_16, flag where the cap applied): a quantized model cannot usefully be worse than
    a uniform guess, and a law that says so is past its range. Projections print the cap and the flag."""
    ceiling = uniform_guess_loss(vocab_size) - np.asarray(loss16, dtype=float)
    qid = np.asarray(qid, dtype=float)
    flagged = qid > ceiling
    return np.where(flagged, ceiling, qid), flagged


def critical_data_size(loss16, qid, low: float = 1e6, high: float = 1e20) -> tuple[float, float]:
    """(D*, loss at D*): the training tokens past which more data makes the quantized model worse, i.e. the
    minimiser over D of Loss_16(D) + QiD(D) (callables of D). D* = inf where the sum still falls at `high`.

    A bounded search in log D after a grid scan (the sum is smooth; the grid guards against a local dip)."""
    grid = np.logspace(math.log10(low), math.log10(high), 801)
    total = np.asarray(loss16(grid), dtype=float) + np.asarray(qid(grid), dtype=float)
    best = int(np.nanargmin(total))
    if best == len(grid) - 1:
        return math.inf, float(total[-1])
    if best == 0:
        return float(grid[0]), float(total[0])
    from scipy.optimize import minimize_scalar

    search = minimize_scalar(lambda log_tokens: float(loss16(math.exp(log_tokens)) + qid(math.exp(log_tokens))),
                             bounds=(math.log(grid[best - 1]), math.log(grid[best + 1])), method="bounded",
                             options={"xatol": 1e-8})
    return math.exp(search.x), float(search.fun)


def critical_data_table(models: dict, sizes: dict[str, float], bits, low: float = 1e6, high: float = 1e20):
    """Critical data size for every model × size × bit width, as a table.

    models: {label: (loss16(N, D), qid(N, D, P))} — e.g. Ouyang's unified law with the Pythia loss law,
    Kumar's δ_PTQ with his base law, our fits. Columns: model, size, N, bits, D_star, tokens_per_parameter,
    loss_at_D_star."""
    import pandas as pd

    rows = []
    for label, (loss16, qid) in models.items():
        for size, N in sizes.items():
            for P in bits:
                tokens, loss = critical_data_size(lambda D, N=N: loss16(N, D), lambda D, N=N, P=P: qid(N, D, P), low, high)
                rows.append({"model": label, "size": size, "N": N, "bits": P, "D_star": tokens,
                             "tokens_per_parameter": tokens / N, "loss_at_D_star": loss})
    return pd.DataFrame(rows)
