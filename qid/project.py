"""Projections from a law: training tokens to reach a QiD ("training level"), and where a quantized
model becomes worse than guessing uniformly over its vocabulary.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from qid.laws import Law

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
