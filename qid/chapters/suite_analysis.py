"""Reading the suite: trained-regime checks and trends with t intervals (the schedule designs are compared in
`qid.chapters.schedule_analysis.schedule_effect`, shared with chapter 6). Every function takes the tidy tables of
`qid.suite.tables`; nothing drops a row for being insignificant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

CHECKPOINT_KEYS = ["design", "phase", "run", "size", "N", "train_seed", "step", "tokens", "tokens_per_parameter", "rung"]


def checkpoint_losses(qid: pd.DataFrame) -> pd.DataFrame:
    """One row per measured checkpoint with its 16-bit loss on the evaluation windows."""
    return qid.groupby(CHECKPOINT_KEYS, dropna=False, sort=False)["loss_16"].first().reset_index()


def baseline(baselines: pd.DataFrame, model: str = "bigram", sample: str = "eval windows") -> float:
    """An n-gram baseline's loss (nats/token) on the evaluation windows or the whole eval split."""
    row = baselines[(baselines["model"] == model) & (baselines["split_sample"] == sample)]
    if row.empty:
        raise ValueError(f"no {model} baseline on {sample!r} in the baselines table")
    return float(row["loss"].iloc[0])


def trained_regime(qid: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint: its 16-bit loss, the bigram's on the same windows, and whether the model beats it."""
    losses = checkpoint_losses(qid)
    bigram = baseline(baselines, "bigram")
    return losses.assign(bigram=bigram, beats_bigram=losses["loss_16"] < bigram)


def loss_ordering(qid: pd.DataFrame, min_rung: float = 20) -> pd.DataFrame:
    """At each rung ≥ `min_rung`: the annealed checkpoints' 16-bit loss by size (WSD decay branches end annealed at
    every rung; cosine seed 0 only at its last) and whether loss falls as N grows."""
    losses = checkpoint_losses(qid)
    annealed = losses[(losses["phase"] == "decayed") & (losses["rung"] >= min_rung)]
    rows = []
    for rung, group in annealed.groupby("rung"):
        group = group.sort_values("N")
        values = group["loss_16"].to_numpy()
        rows.append({"rung": rung, "sizes": len(group), "losses": ", ".join(f"{v:.3f}" for v in values),
                     "ordered_by_N": bool(np.all(np.diff(values) < 0)) if len(values) > 1 else True})
    return pd.DataFrame(rows, columns=["rung", "sizes", "losses", "ordered_by_N"])


def weighted_slope(x, y, se, log_x: bool = True, confidence: float = 0.95) -> dict:
    """Weighted least-squares slope of y on log x (weights 1/se²), with a t interval on n − 2 degrees of freedom
    and the residual scatter folded in (the SE is scaled by √(χ²/dof) when the points scatter more than their SEs).
    """
    x, y, se = (np.asarray(v, dtype=float) for v in (x, y, se))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(se) & (se > 0)
    x, y, se = x[keep], y[keep], se[keep]
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return {"slope": np.nan, "slope_se": np.nan, "low": np.nan, "high": np.nan, "points": n, "t": np.nan}
    u = np.log(x) if log_x else x
    w = 1 / se**2
    design = np.column_stack([np.ones(n), u])
    covariance = np.linalg.inv(design.T @ (design * w[:, None]))
    coefficients = covariance @ design.T @ (w * y)
    chi2 = float(np.sum(w * (y - design @ coefficients) ** 2))
    scale = max(1.0, chi2 / (n - 2))
    slope_se = float(np.sqrt(covariance[1, 1] * scale))
    quantile = stats.t.ppf(0.5 + confidence / 2, n - 2)
    slope = float(coefficients[1])
    return {"slope": slope, "slope_se": slope_se, "low": slope - quantile * slope_se,
            "high": slope + quantile * slope_se, "points": n, "t": slope / slope_se if slope_se > 0 else np.nan}


def trends(qid: pd.DataFrame, against: str, by: list[str], phases=("intermediate", "final"), min_rung: float = 20,
           calib_seed: int = 0) -> pd.DataFrame:
    """dQiD/d ln(`against`) per group (`by`), over the cosine checkpoints at rungs ≥ `min_rung` (seed 0 calibration)."""
    table = qid[qid["phase"].isin(phases) & (qid["rung"] >= min_rung)
                & ((qid["calib_seed"].isna()) | (qid["calib_seed"] == calib_seed))]
    rows = []
    for key, group in table.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **weighted_slope(group[against], group["qid"], group["qid_se"])})
    return pd.DataFrame(rows)


def significant_share(qid: pd.DataFrame, method: str = "gptq", bits: int = 2, min_rung: float = 20,
                      sigmas: float = 3.0) -> tuple[int, int]:
    """How many checkpoints (seed-0 calibration) at rungs ≥ `min_rung` have QiD above `sigmas` standard errors."""
    rows = qid[(qid["method"] == method) & (qid["bits"] == bits) & (qid["rung"] >= min_rung)
               & ((qid["calib_seed"].isna()) | (qid["calib_seed"] == 0))]
    return int((rows["qid"] > sigmas * rows["qid_se"]).sum()), len(rows)


def qid_at_fixed_tokens(qid: pd.DataFrame, method: str, bits: int, tokens_grid) -> pd.DataFrame:
    """Each size's cosine QiD (mean of its training seeds, calibration seed 0) interpolated linearly in ln D to the
    given token counts, where the size's ladder covers them: N varies at fixed D, the comparison the paper's α
    describes (at fixed D/N the larger model has also seen more tokens). The SE interpolates the bracketing rows'."""
    rows = qid[(qid["design"] == "cosine") & (qid["method"] == method) & (qid["bits"] == bits)
               & (qid["calib_seed"].isna() | (qid["calib_seed"] == 0))]
    out = []
    for size, group in rows.groupby("size", sort=False):
        curve = group.groupby("tokens").agg(qid=("qid", "mean"), qid_se=("qid_se", "mean"), N=("N", "first"))
        log_tokens = np.log(curve.index.to_numpy(dtype=float))
        for tokens in tokens_grid:
            x = np.log(tokens)
            if x < log_tokens.min() or x > log_tokens.max():
                continue
            above = min(int(np.searchsorted(log_tokens, x)), len(log_tokens) - 1)
            below = max(above - 1, 0)
            weight = 0.0 if above == below else (x - log_tokens[below]) / (log_tokens[above] - log_tokens[below])
            value = (1 - weight) * curve["qid"].iloc[below] + weight * curve["qid"].iloc[above]
            se = float(np.hypot((1 - weight) * curve["qid_se"].iloc[below], weight * curve["qid_se"].iloc[above]))
            out.append({"size": size, "N": int(curve["N"].iloc[0]), "tokens": float(tokens), "method": method,
                        "bits": bits, "qid": float(value), "qid_se": se})
    return pd.DataFrame(out, columns=["size", "N", "tokens", "method", "bits", "qid", "qid_se"])


def trends_at_fixed_tokens(qid: pd.DataFrame, methods, bits_list, tokens_grid, min_sizes: int = 3) -> pd.DataFrame:
    """dQiD/d ln N at each fixed D of the grid covered by at least `min_sizes` sizes (weighted, t interval)."""
    rows = []
    for method in methods:
        for bits in bits_list:
            points = qid_at_fixed_tokens(qid, method, bits, tokens_grid)
            for tokens, group in points.groupby("tokens"):
                if len(group) < min_sizes:
                    continue
                rows.append({"method": method, "bits": bits, "tokens": tokens, "sizes": len(group),
                             **weighted_slope(group["N"], group["qid"], group["qid_se"])})
    return pd.DataFrame(rows)


def sign_verdicts(slopes: pd.DataFrame, expected_sign: int) -> list[str]:
    """Per slope row (columns low, high: its interval): 'yes' when the interval lies on the expected side of zero,
    'opposite' when on the other side, 'not resolved' when it contains zero, 'too few points' when undefined."""
    verdicts = []
    for low, high in zip(slopes.get("low", []), slopes.get("high", [])):
        if not np.isfinite(low):
            verdicts.append("too few points")
        elif expected_sign * low > 0 and expected_sign * high > 0:
            verdicts.append("yes")
        elif expected_sign * low < 0 and expected_sign * high < 0:
            verdicts.append("opposite")
        else:
            verdicts.append("not resolved")
    return verdicts
