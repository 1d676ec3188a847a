"""n-gram baselines on the book's corpus: what a model must beat to count as trained.

Counts come from the train split; the interpolation weights are chosen on the calibration split; the loss
(mean negative log-likelihood, nats per token) is reported on the eval split, both on the whole split and on
the same predicted positions as the suite's evaluation windows. Interpolated (Jelinek-Mercer) estimates:

* unigram: add-one smoothed token frequencies;
* bigram: λ₂·p_ML(w | v) + (1 − λ₂)·p₁(w);
* trigram: λ₃·p_ML(w | u, v) + (1 − λ₃)·p₂(w | v).

An unseen context gives p_ML = 0, so the lower-order estimate carries it. Counts are kept as sorted int64 keys
(u·V² + v·V + w) with `numpy.unique`, so a 10M-token corpus with a 1,024-token vocabulary takes seconds.
"""

from __future__ import annotations

import numpy as np

LAMBDA_GRID = np.round(np.arange(0.05, 1.0, 0.05), 2)


class NgramCounts:
    def __init__(self, tokens: np.ndarray, vocab_size: int):
        tokens = np.asarray(tokens, dtype=np.int64)
        self.vocab_size = V = int(vocab_size)
        self.unigram = np.bincount(tokens, minlength=V).astype(np.float64)
        self.bigram_keys, self.bigram_counts = np.unique(tokens[:-1] * V + tokens[1:], return_counts=True)
        self.context1 = np.bincount(tokens[:-1], minlength=V).astype(np.float64)
        self.trigram_keys, self.trigram_counts = np.unique((tokens[:-2] * V + tokens[1:-1]) * V + tokens[2:],
                                                           return_counts=True)
        self.context2_keys, self.context2_counts = np.unique(tokens[:-2] * V + tokens[1:-1], return_counts=True)

    @staticmethod
    def _lookup(keys, counts, query):
        position = np.searchsorted(keys, query)
        position = np.minimum(position, len(keys) - 1)
        return np.where(keys[position] == query, counts[position], 0).astype(np.float64)

    def unigram_probability(self, w):
        return (self.unigram[w] + 1.0) / (self.unigram.sum() + self.vocab_size)

    def bigram_ml(self, v, w):
        context = self.context1[v]
        count = self._lookup(self.bigram_keys, self.bigram_counts, v * self.vocab_size + w)
        return np.divide(count, context, out=np.zeros_like(count), where=context > 0)

    def trigram_ml(self, u, v, w):
        V = self.vocab_size
        context = self._lookup(self.context2_keys, self.context2_counts, u * V + v)
        count = self._lookup(self.trigram_keys, self.trigram_counts, (u * V + v) * V + w)
        return np.divide(count, context, out=np.zeros_like(count), where=context > 0)


def _positions(tokens: np.ndarray):
    tokens = np.asarray(tokens, dtype=np.int64)
    return tokens[:-2], tokens[1:-1], tokens[2:]


def losses(counts: NgramCounts, u, v, w, lambda2: float, lambda3: float) -> dict[str, np.ndarray]:
    """Per-position negative log-likelihood (nats) of the unigram, bigram and trigram models."""
    p1 = counts.unigram_probability(w)
    p2 = lambda2 * counts.bigram_ml(v, w) + (1 - lambda2) * p1
    p3 = lambda3 * counts.trigram_ml(u, v, w) + (1 - lambda3) * p2
    return {"unigram": -np.log(p1), "bigram": -np.log(p2), "trigram": -np.log(p3)}


def tune_lambdas(counts: NgramCounts, tokens: np.ndarray) -> tuple[float, float]:
    """Interpolation weights minimising the held-out loss (bigram first, then trigram given the bigram)."""
    u, v, w = _positions(tokens)
    p1 = counts.unigram_probability(w)
    b_ml, t_ml = counts.bigram_ml(v, w), counts.trigram_ml(u, v, w)
    lambda2 = min(LAMBDA_GRID, key=lambda l2: -np.log(l2 * b_ml + (1 - l2) * p1).mean())
    p2 = lambda2 * b_ml + (1 - lambda2) * p1
    lambda3 = min(LAMBDA_GRID, key=lambda l3: -np.log(l3 * t_ml + (1 - l3) * p2).mean())
    return float(lambda2), float(lambda3)


def baselines(window_length: int, windows_tensor=None):
    """The n-gram baselines as a tidy table: model, split_sample (whole eval split / eval windows), loss, λs.

    `windows_tensor`: the suite's evaluation windows [W, L]; each window's predicted positions 2..L−1 are scored
    with their two previous tokens (position 1 has one previous token in the window; it is scored by the bigram
    inside the trigram's interpolation only when it has no second context token, so positions ≥ 2 are used)."""
    import pandas as pd

    from qid.suite import corpus
    from qid.suite.corpus import load_tokenizer

    vocab = len(load_tokenizer())
    counts = NgramCounts(corpus.load_split_tokens("train"), vocab)
    lambda2, lambda3 = tune_lambdas(counts, corpus.load_split_tokens("calibration"))
    rows = []
    whole = losses(counts, *_positions(corpus.load_split_tokens("eval")), lambda2, lambda3)
    for model, values in whole.items():
        rows.append({"model": model, "split_sample": "eval split", "loss": float(values.mean()), "positions": values.size})
    if windows_tensor is not None:
        window = np.asarray(windows_tensor, dtype=np.int64)
        u, v, w = window[:, :-2].ravel(), window[:, 1:-1].ravel(), window[:, 2:].ravel()
        for model, values in losses(counts, u, v, w, lambda2, lambda3).items():
            rows.append({"model": model, "split_sample": "eval windows", "loss": float(values.mean()),
                         "positions": values.size})
    table = pd.DataFrame(rows)
    table["lambda2"], table["lambda3"], table["window_length"] = lambda2, lambda3, window_length
    return table
