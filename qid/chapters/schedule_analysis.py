"""Chapter 6's analyses: the curve laws on Luo et al.'s curves and on the book's suite, and QiD along the schedule.

- `luo_split_metrics`: score a parameter set on held-out curves (R², PredE, WorstE per curve and averaged).
- `fit_curves`: fit a curve law to named runs with the project's fitter (Huber on log loss, as Luo et al.).
- `suite_curve_runs`: the suite's training logs as curves (per-step learning rate rebuilt from the log).
- `checkpoint_schedule_statistics`: S1, the annealing area S2 and the fraction of the peak rate removed at
  every measured checkpoint of the suite.
- `schedule_effect`: the one answer to the schedule question, used by chapters 03 and 06: decayed WSD checkpoints
  against their constant-rate run at matched tokens and at matched 16-bit loss (log QiD interpolated in the loss,
  validated by leave-one-out), with the token gap at matched loss and intervals clustered by training run.
- `decay_effect`: a secondary, model-based reading: a regression of QiD on the 16-bit loss (per size) and the
  annealing area, with t and cluster-bootstrap intervals.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from qid.laws.curves import curve_metrics, curve_table
from qid.laws.registry import get_law
from qid.laws.schedules import annealing_area, forward_area

METRICS = ("r2", "pred_error", "worst_error")
QID_SCHEDULE_COLUMNS = ("design", "phase", "run", "size", "train_seed", "step", "loss_16", "method", "bits", "qid", "qid_se")
TRAIN_LOG_COLUMNS = ("design", "run", "size", "step", "lr")


# --- Luo et al.'s curves ------------------------------------------------------------------------------------


def luo_split_metrics(law_name: str, params_by_size: dict[str, dict], curves: dict, schedules) -> pd.DataFrame:
    """One row per (size, schedule): the law's prediction of that measured curve scored by `curve_metrics`."""
    law = get_law(law_name)
    rows = []
    for size, params in params_by_size.items():
        for schedule in schedules:
            curve = curves[(size, schedule)]
            predicted = law(params, lr=curve["lr"], step=curve["steps"])
            rows.append({"size": size, "schedule": schedule, **curve_metrics(curve["loss"], predicted)})
    return pd.DataFrame(rows)


def average_metrics(per_curve: pd.DataFrame) -> pd.DataFrame:
    """Luo et al.'s summary: each metric averaged over the curves of a size (one row per size, in input order)."""
    return per_curve.groupby("size", sort=False)[list(METRICS)].mean().reset_index()


def fit_curves(law_name: str, runs: dict[str, dict], screen: int = 2, bootstrap: int = 0, seed: int = 0, **options):
    """Fit a curve law to {run: {lr, steps, loss}} with the project's fitter: Huber (δ = 1e-3) on log loss,
    the law's start grid screened and the `screen` best starts run to convergence; bootstrap by run."""
    from qid.fitting.fit import fit_law

    settings = {"loss": "huber", "delta": 1e-3, "space": "log", "starts": "grid", "screen": screen} | options
    return fit_law(law_name, curve_table(runs), bootstrap=bootstrap, seed=seed, keep_table=False, **settings)


# --- the suite's training logs ------------------------------------------------------------------------------


def run_key(design: str, run: str, seed) -> str:
    """One name per training curve: runs of two training seeds share a run name in the suite's tables."""
    return f"{design}/{run}" + ("" if seed is None or (isinstance(seed, float) and math.isnan(seed)) else f"/seed{int(seed)}")


def per_step_rates(steps, rates) -> np.ndarray:
    """The learning rate of every step 0..max(steps) from a log that records it every few steps: linear
    interpolation between logged steps, from 0 at step 0 (the suite's linear warmup starts at 0). Exact on the
    warmup and on linear decays; on a cosine the error is second order in the logging interval."""
    steps, rates = np.asarray(steps, dtype=float), np.asarray(rates, dtype=float)
    order = np.argsort(steps)
    steps, rates = steps[order], rates[order]
    if steps[0] > 0:
        steps, rates = np.concatenate([[0.0], steps]), np.concatenate([[0.0], rates])
    return np.interp(np.arange(int(steps[-1]) + 1), steps, rates)


def suite_curve_runs(train_log: pd.DataFrame, loss_column: str = "train_loss", designs=("cosine", "wsd"),
                     after_warmup: bool = True) -> dict[str, dict]:
    """{run key: {"lr", "steps", "loss", "design", "size", "seed"}} for every run of `designs` in a suite
    training log, the loss taken from `loss_column` at the steps where it was logged; with `after_warmup`,
    only steps after the rate first reaches its peak (the laws describe training after warmup, as Luo et al.'s
    curves, which start at the end of their warmup)."""
    missing = [column for column in (*TRAIN_LOG_COLUMNS, loss_column) if column not in train_log.columns]
    if missing:
        raise ValueError(f"training log lacks column(s) {', '.join(missing)}")
    seed_column = "seed" if "seed" in train_log.columns else None
    runs = {}
    keys = ["design", "run"] + ([seed_column] if seed_column else [])
    selected = train_log[train_log["design"].isin(designs)]
    for key, rows in selected.groupby(keys, sort=True):
        design, run, seed = key if seed_column else (*key, None)
        rows = _with_parent_prefix(rows.sort_values("step"), selected, seed_column)
        lr = per_step_rates(rows["step"], rows["lr"])
        first = int(np.argmax(lr >= lr.max() * (1 - 1e-9))) if after_warmup else 1  # end of the warmup
        measured = rows[rows[loss_column].notna() & (rows["step"] >= max(first, 1))]
        if measured.empty:
            continue
        runs[run_key(design, run, seed)] = {
            "lr": lr, "steps": measured["step"].to_numpy(int), "loss": measured[loss_column].to_numpy(float),
            "design": design, "size": rows["size"].iloc[0], "seed": seed,
        }
    return runs


def _with_parent_prefix(rows: pd.DataFrame, log: pd.DataFrame, seed_column: str | None) -> pd.DataFrame:
    """A decay branch whose log starts late (it resumed from a checkpoint of its size's constant-rate run) gets
    that run's logged steps before its first one: the schedule statistics need the whole history."""
    steps = rows["step"].to_numpy()
    interval = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
    if steps[0] <= 4 * max(interval, 1.0):
        return rows
    same = (log["design"] == rows["design"].iloc[0]) & (log["size"] == rows["size"].iloc[0]) & (log["run"] != rows["run"].iloc[0])
    if seed_column:
        same &= log[seed_column] == rows[seed_column].iloc[0]
    candidates = log[same & (log["step"] < steps[0])]
    if candidates.empty:
        return rows
    parent = candidates.groupby("run")["step"].count().idxmax()  # the longest-logged sibling: the constant run
    prefix = candidates[candidates["run"] == parent].assign(run=rows["run"].iloc[0])
    for column in ("train_loss", "eval_loss"):  # the rate only: the parent's losses stay the parent's
        if column in prefix:
            prefix[column] = np.nan
    return pd.concat([prefix, rows], ignore_index=True).sort_values("step")


# --- QiD along the schedule --------------------------------------------------------------------------------


def has_schedule_columns(qid_table: pd.DataFrame | None) -> bool:
    """Whether a QiD table has what the QiD-along-the-schedule analysis needs (the new suite's columns)."""
    return qid_table is not None and set(QID_SCHEDULE_COLUMNS) <= set(qid_table.columns) and \
        {"cosine", "wsd"} <= set(qid_table["design"])


def checkpoint_schedule_statistics(qid_table: pd.DataFrame, runs: dict[str, dict], decay: float = 0.999) -> pd.DataFrame:
    """The QiD table with S1 (area under the rate), S2 (annealing area, momentum `decay`, counting only drops
    after the warmup: in runs as short as the suite's the warmup's rising rate would otherwise dominate S2) and
    `rate_removed` = 1 − η_t/η_peak of each checkpoint's run at its step, QiD averaged over calibration seeds."""
    keys = [column for column in ("design", "phase", "run", "size", "train_seed", "step", "method", "bits") if column in qid_table]
    table = qid_table.groupby(keys, dropna=False, sort=False).agg(
        loss_16=("loss_16", "mean"), qid=("qid", "mean"), qid_se=("qid_se", "mean"),
        calib_seeds=("qid", "size")).reset_index()
    statistics = {}
    for key, curve in runs.items():
        lr = curve["lr"]
        statistics[key] = (forward_area(lr), annealing_area(lr, decay, after_warmup=True), lr, lr.max())
    S1, S2, removed = [], [], []
    for row in table.itertuples(index=False):
        key = run_key(row.design, row.run, row.train_seed)
        if key not in statistics:  # a training log without a seed column names runs without it
            key = run_key(row.design, row.run, None)
        if key not in statistics or row.step >= len(statistics[key][0]):
            S1.append(np.nan), S2.append(np.nan), removed.append(np.nan)
            continue
        forward, area, lr, peak = statistics[key]
        S1.append(forward[row.step]), S2.append(area[row.step]), removed.append(1 - lr[row.step] / peak)
    return table.assign(S1=S1, S2=S2, rate_removed=removed)


def _design_matrix(rows: pd.DataFrame, annealing: str | None, loss: bool = True, forward: bool = False,
                   loss_degree: int = 3):
    """Columns: per size, an intercept and (with `loss`) a polynomial of degree `loss_degree` in the 16-bit loss
    (centred on the size's mean: QiD rises steeply and non-linearly as the loss falls); log S1 if `forward`; the
    annealing statistic last if given."""
    columns, names = [], []
    for size in sorted(rows["size"].unique()):
        mine = (rows["size"] == size).to_numpy(float)
        columns.append(mine), names.append(f"intercept[{size}]")
        if loss:
            centred = rows["loss_16"].to_numpy(float) - rows.loc[mine > 0, "loss_16"].mean()
            for power in range(1, loss_degree + 1):
                columns.append(mine * centred**power), names.append(f"loss_16^{power}[{size}]")
    if forward:
        columns.append(np.log(rows["S1"].to_numpy(float))), names.append("log_S1")
    if annealing:
        columns.append(rows[annealing].to_numpy(float)), names.append(annealing)
    return np.column_stack(columns), names


def _least_squares(X, y):
    coefficients, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    return coefficients, rank


def aicc(residuals: np.ndarray, n_parameters: int) -> float:
    """Gaussian AICc of a least-squares fit (σ profiled out; n_parameters counts σ)."""
    n = len(residuals)
    rss = float(residuals @ residuals)
    k = n_parameters + 1
    return n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / max(n - k - 1, 1)


def decay_effect(table: pd.DataFrame, method: str, bits: int, annealing: str = "S2", bootstrap: int = 1000,
                 seed: int = 0, confidence: float = 0.95, loss_degree: int = 3) -> dict:
    """QiD_i = p_size(loss16_i) + c·annealing_i + ε, p_size a polynomial of degree `loss_degree` per size
    (ordinary least squares over the checkpoints of both designs): c is the QiD that decay adds at matched
    16-bit loss (per unit of the annealing statistic).
    Interval for c: t quantile (residual degrees of freedom) and a percentile bootstrap that resamples whole
    training lineages (size, design, training seed: a WSD run and its decay branches move together).
    Also the AICc of loss only, loss + annealing, and S1 + annealing (no loss)."""
    rows = table[(table["method"] == method) & (table["bits"] == bits)].dropna(subset=["S1", annealing, "qid", "loss_16"])
    rows = rows.reset_index(drop=True)
    if len(rows) < 8 or rows[annealing].nunique() < 3:
        return {"method": method, "bits": bits, "n": len(rows), "estimable": False}
    y = rows["qid"].to_numpy(float)
    X, names = _design_matrix(rows, annealing, loss_degree=loss_degree)
    coefficients, rank = _least_squares(X, y)
    residuals = y - X @ coefficients
    dof = len(y) - rank
    sigma2 = float(residuals @ residuals) / max(dof, 1)
    covariance = sigma2 * np.linalg.pinv(X.T @ X)
    effect, effect_se = coefficients[-1], math.sqrt(covariance[-1, -1])
    t = stats.t.ppf(0.5 + confidence / 2, max(dof, 1))
    lineage = rows["size"].astype(str) + "/" + rows["design"].astype(str) + "/" + rows["train_seed"].astype(str)
    labels, codes = np.unique(lineage, return_inverse=True)
    members = [np.flatnonzero(codes == code) for code in range(len(labels))]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(bootstrap):
        index = np.concatenate([members[code] for code in rng.integers(0, len(labels), size=len(labels))])
        sample = rows.iloc[index]
        if sample[annealing].nunique() < 3:
            continue
        X_b, _ = _design_matrix(sample, annealing, loss_degree=loss_degree)
        coefficients_b, rank_b = _least_squares(X_b, sample["qid"].to_numpy(float))
        if rank_b == X_b.shape[1]:
            draws.append(coefficients_b[-1])
    tail = 100 * (1 - confidence) / 2
    interval = np.percentile(draws, [tail, 100 - tail]).tolist() if len(draws) >= 20 else [None, None]
    loss_only, _ = _design_matrix(rows, None, loss_degree=loss_degree)
    forward_only, _ = _design_matrix(rows, annealing, loss=False, forward=True)
    fits = {}
    for name, design in (("loss", loss_only), ("loss + annealing", X), ("S1 + annealing", forward_only)):
        beta, rank_m = _least_squares(design, y)
        fits[name] = aicc(y - design @ beta, rank_m)
    return {
        "method": method, "bits": bits, "n": len(rows), "n_lineages": len(labels), "estimable": True,
        "annealing": annealing, "effect": float(effect), "effect_se": float(effect_se), "dof": int(dof),
        "t_interval": [float(effect - t * effect_se), float(effect + t * effect_se)],
        "bootstrap_interval": interval, "bootstrap_draws": len(draws), "annealing_range": float(rows[annealing].max() - rows[annealing].min()),
        "aicc": fits, "residual_sd": math.sqrt(sigma2), "loss_degree": loss_degree,
    }


def parameters_at_bounds(fit) -> list[str]:
    """Free parameters of a fit that ended on one of their bounds (within 1e-6 relative): not identified by the data."""
    names = []
    for name, (low, high) in fit.bounds.items():
        if name in fit.fixed:
            continue
        if any(edge is not None and abs(fit.params[name] - edge) <= 1e-6 * max(1.0, abs(edge)) for edge in (low, high)):
            names.append(name)
    return names


def huber_objective(law_name: str, params: dict, runs: dict[str, dict], delta: float = 1e-3) -> float:
    """The fits' objective (sum of Huber_δ of log-loss residuals) of a parameter set on named runs."""
    from qid.fitting.problem import huber

    law = get_law(law_name)
    residuals = np.concatenate([np.log(run["loss"]) - np.log(law(params, lr=run["lr"], step=run["steps"]))
                                for run in runs.values()])
    return float(huber(residuals, delta).sum())


def choose_loss_degree(table: pd.DataFrame, method: str, bits: int, degrees=(1, 2, 3, 4)) -> int:
    """The degree of the per-size polynomial in the 16-bit loss with the lowest AICc for QiD on loss alone (no
    annealing term): how flexible the 'what the loss explains' part of `decay_effect` must be for these data."""
    rows = table[(table["method"] == method) & (table["bits"] == bits)].dropna(subset=["qid", "loss_16"])
    scores = {}
    for degree in degrees:
        X, _ = _design_matrix(rows, None, loss_degree=degree)
        beta, rank = _least_squares(X, rows["qid"].to_numpy(float))
        if len(rows) - rank > 2:
            scores[degree] = aicc(rows["qid"].to_numpy(float) - X @ beta, rank)
    return min(scores, key=scores.get)


# --- the schedule question, answered once (chapters 03 and 06) ----------------------------------------------
# A WSD family per size and training seed: a constant-rate run with stable checkpoints, and decay branches that
# end at the ladder's rungs. Decay lowers the 16-bit loss, and QiD depends on how far training has got, so the
# effect is reported three ways together: at matched tokens (the whole effect of decaying), at matched 16-bit
# loss (the constant-rate run's QiD interpolated to the branch's loss) and the token gap at matched loss (how
# many more tokens the constant-rate comparator has seen). Checkpoints of one family share a trunk, so every
# interval is clustered by training run: one mean per family, then a t interval over families.

SCHEDULE_LINEAGE = ("size", "train_seed")  # one WSD family: a constant-rate run and its decay branches


def first_calibration(table: pd.DataFrame) -> pd.DataFrame:
    """Rows measured with the first calibration seed (or none: RTN)."""
    return table[table["calib_seed"].isna() | (table["calib_seed"] == table["calib_seed"].min())]


def interpolate(x: float, xs: np.ndarray, ys: np.ndarray, log_y: bool) -> float:
    """ys interpolated at x between the two bracketing xs (xs ascending): linearly in y, or in log y (then every
    bracketing y must be positive; NaN otherwise). NaN outside the range of xs: no extrapolation."""
    if len(xs) < 2 or not xs[0] <= x <= xs[-1]:
        return math.nan
    above = min(int(np.searchsorted(xs, x, side="right")), len(xs) - 1)
    below = above - 1
    weight = (x - xs[below]) / (xs[above] - xs[below]) if xs[above] > xs[below] else 0.0
    low, high = ys[below], ys[above]
    if log_y:
        if low <= 0 or high <= 0:
            return math.nan
        return float(math.exp((1 - weight) * math.log(low) + weight * math.log(high)))
    return float((1 - weight) * low + weight * high)


def stable_curve(family: pd.DataFrame) -> pd.DataFrame:
    """A family's constant-rate checkpoints sorted by 16-bit loss (ascending)."""
    return family[family["phase"] == "stable"].sort_values("loss_16")


def interpolation_check(rows: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-out check of QiD interpolated in the 16-bit loss: every interior constant-rate checkpoint of a
    family predicted from its two neighbours, linearly in QiD and linearly in log QiD. One row per checkpoint with
    both predictions; QiD is convex in the loss, so linear interpolation over-predicts (it cuts the chord)."""
    out = []
    for key, family in rows.groupby(list(SCHEDULE_LINEAGE)):
        curve = stable_curve(family)
        losses, values = curve["loss_16"].to_numpy(float), curve["qid"].to_numpy(float)
        for i in range(1, len(curve) - 1):
            keep = np.r_[0:i, i + 1:len(curve)]
            out.append({"size": key[0], "train_seed": key[1], "loss_16": losses[i], "qid": values[i],
                        "linear": interpolate(losses[i], losses[keep], values[keep], log_y=False),
                        "log": interpolate(losses[i], losses[keep], values[keep], log_y=True)})
    return pd.DataFrame(out, columns=["size", "train_seed", "loss_16", "qid", "linear", "log"])


def interpolation_summary(check: pd.DataFrame) -> dict:
    """Per interpolation: checkpoints predicted, how many over-predicted, and the mean relative error (fraction)."""
    summary = {}
    for name in ("linear", "log"):
        usable = check.dropna(subset=[name])
        usable = usable[usable["qid"] > 0]
        summary[name] = {"checkpoints": len(usable), "over_predicted": int((usable[name] > usable["qid"]).sum()),
                         "mean_relative_error": float((usable[name] / usable["qid"] - 1).mean()) if len(usable) else math.nan}
    return summary


def matched_pairs(rows: pd.DataFrame, min_rung: float) -> pd.DataFrame:
    """Each decay branch's end (D/N ≥ `min_rung`) against its own family's constant-rate run: at the same rung
    (matched tokens) and at the same 16-bit loss (log QiD and log tokens interpolated in the loss between the
    bracketing constant-rate checkpoints; NaN outside their range: never extrapolated)."""
    out = []
    for key, family in rows.groupby(list(SCHEDULE_LINEAGE)):
        curve = stable_curve(family)
        losses = curve["loss_16"].to_numpy(float)
        by_tokens = family[family["phase"] == "stable"]
        for row in family[(family["phase"] == "decayed") & (family["tokens_per_parameter"] >= min_rung)].itertuples():
            same_tokens = by_tokens[np.isclose(by_tokens["tokens"], row.tokens, rtol=0.02)]
            constant_tokens = float(same_tokens["qid"].iloc[0]) if len(same_tokens) else math.nan
            at_loss = interpolate(row.loss_16, losses, curve["qid"].to_numpy(float), log_y=True)
            tokens_at_loss = interpolate(row.loss_16, losses, curve["tokens"].to_numpy(float), log_y=True)
            out.append({"size": key[0], "train_seed": key[1], "tokens_per_parameter": row.tokens_per_parameter,
                        "tokens": row.tokens, "loss_16": row.loss_16, "qid_decayed": row.qid,
                        "qid_constant_same_tokens": constant_tokens, "qid_constant_same_loss": at_loss,
                        "matched_tokens": row.qid - constant_tokens, "matched_loss": row.qid - at_loss,
                        "token_gap": tokens_at_loss / row.tokens})
    return pd.DataFrame(out, columns=["size", "train_seed", "tokens_per_parameter", "tokens", "loss_16", "qid_decayed",
                                      "qid_constant_same_tokens", "qid_constant_same_loss", "matched_tokens",
                                      "matched_loss", "token_gap"])


def clustered_mean(pairs: pd.DataFrame, column: str, confidence: float, log: bool = False) -> dict:
    """Mean of `column` with a t interval clustered by training run: one mean per family, then the mean over the
    families and a t interval on (families − 1) degrees of freedom (checkpoints of one family share a trunk; their
    rows are not independent). With `log`, the geometric mean of a positive ratio."""
    usable = pairs.dropna(subset=[column])
    if log:
        usable = usable[usable[column] > 0].assign(**{column: lambda t: np.log(t[column])})
    per_family = usable.groupby(list(SCHEDULE_LINEAGE))[column].mean().to_numpy(float)
    n = len(per_family)
    back = np.exp if log else (lambda value: value)
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "pairs": 0, "families": 0}
    mean = float(per_family.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * per_family.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": float(back(mean)), "low": float(back(mean - half)), "high": float(back(mean + half)),
            "pairs": int(len(usable)), "families": n,
            "min": float(back(usable[column].min())), "max": float(back(usable[column].max()))}


def schedule_effect(qid: pd.DataFrame, method: str, bits: int, min_rung: float, confidence: float = 0.95) -> dict:
    """The schedule question for one quantizer and bit width, answered once for chapters 03 and 06.

    Returns {pairs: matched_pairs table, interpolation: leave-one-out check, interpolation_summary,
    matched_tokens / matched_loss: clustered means of decayed − constant-rate QiD (nats), token_gap: geometric
    mean of the constant-rate comparator's tokens over the branch's at matched loss, verdict: a sentence}."""
    rows = first_calibration(qid[(qid["design"] == "wsd") & (qid["method"] == method) & (qid["bits"] == bits)])
    if "tokens_per_parameter" not in rows:
        rows = rows.assign(tokens_per_parameter=rows["tokens"] / rows["N"])
    pairs = matched_pairs(rows, min_rung)
    check = interpolation_check(rows)
    result = {"method": method, "bits": bits, "min_rung": min_rung, "confidence": confidence, "pairs": pairs,
              "interpolation": check, "interpolation_summary": interpolation_summary(check),
              "matched_tokens": clustered_mean(pairs, "matched_tokens", confidence),
              "matched_loss": clustered_mean(pairs, "matched_loss", confidence),
              "token_gap": clustered_mean(pairs, "token_gap", confidence, log=True)}
    result["verdict"] = schedule_verdict(result)
    return result


def excludes_zero(summary: dict) -> int:
    """+1 / −1 when a clustered interval lies above / below zero, 0 when it contains zero or is undefined."""
    low, high = summary["low"], summary["high"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def schedule_verdict(result: dict) -> str:
    """The finding, no stronger than its intervals, and as far as the data separate loss from tokens."""
    tokens, loss, gap = result["matched_tokens"], result["matched_loss"], result["token_gap"]
    if loss["families"] < 2:
        return "Too few WSD families with matched checkpoints to put an interval on the effect of decay."
    direction = {1: "more", -1: "less"}
    sentence = []
    sign = excludes_zero(tokens)
    sentence.append(f"at the same tokens a decayed checkpoint carries {direction[sign]} QiD than the constant-rate one"
                    if sign else "at the same tokens the intervals do not resolve the sign of decay's effect")
    sign_loss = excludes_zero(loss)
    if sign_loss:
        sentence.append(f"at the same 16-bit loss it carries {direction[sign_loss]} QiD, but the constant-rate "
                        f"comparator has seen {gap['mean']:.2f}× the tokens: within one run loss and tokens move "
                        "together, so the data cannot say whether that difference is decay or the extra tokens")
    else:
        sentence.append("at the same 16-bit loss the interval contains zero: no effect beyond the loss is resolved")
    text = "; ".join(sentence)
    return text[0].upper() + text[1:] + "."
