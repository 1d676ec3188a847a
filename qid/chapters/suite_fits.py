"""The laws fitted to the suite's QiD with every row kept and every error carried (chapter 05's engine).

1. `normalize_measured` reads the suite's table or a `qid measure` output (columns mapped, defaults stated);
   `prepare_rows` adds the error model (`qid.fitting.errormodel`), averages calibration seeds per checkpoint, selects
   one quantizer, bit widths, designs and phases — and drops **no** row for being small or negative.
2. `fit_suite_laws` fits the unified law, Kumar et al.'s δ_PTQ and one law per bit width in linear QiD
   space, residuals divided by each row's total standard error, with an optional extra scatter; intervals
   from a bootstrap over training lineages (and over eval windows where window losses exist). The laws'
   exponent bounds are symmetric about zero (`qid.laws.registry`), so no bound hides a sign.
3. `compare_laws` gives row-level AICc and BIC (for reference: rows of one lineage are correlated, so the ranking
   is by lineage cross-validation, `qid.chapters.exponent_checks.leave_one_lineage_out`); `holdout_scores` refits
   each law on the rows that remain after one common hold-out (the largest size, and every size's largest D/N)
   and scores all laws, and a naive nearest-row baseline, on those same held-out rows.
4. `few_point_slope`: α as the slope of 4-ish per-size prefactors, with a t quantile (n − 2 dof): α's headline.
5. `loss16_fit`: our 16-bit loss law (Chinchilla's form) from the checkpoints, for the worse-than-uniform
   bound and the critical data size at our scale (used only where it is identified).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from qid.chapters.exponent_checks import nearest_neighbour_baseline
from qid.fitting.errormodel import collapse_calibration_seeds, lineage, variance_components
from qid.fitting.fit import FitResult, fit_law
from qid.laws.registry import get_law
from qid.fitting.likelihood import distinct_count
from qid.common.csvtables import DataError, check_table

TOTAL_ERROR = "qid_se_total"  # the column the fits weight by
CLUSTER = "lineage"  # the bootstrap's cluster column (design × size × training seed)
RANDOM_STARTS = 300  # seeded random starts in each law's grid box (the full grids are slower and find the same optimum)
LAW_LABELS = {"ouyang_unified": "Ouyang unified", "kumar_ptq": "Kumar δ_PTQ", "ouyang_per_bit": "per-bit (one law per P)",
              "curved_unified": "curved unified (this book)", "naive": "naive (nearest kept row)"}


def normalize_measured(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The suite's columns from either table format, with a sentence per default that had to be assumed.

    A `qid measure` table has checkpoint, N, D, method, bits, seed, qid, qid_se: its checkpoint becomes the run
    (one lineage each), D the tokens, its seed the calibration seed of GPTQ/AWQ rows; design 'measured',
    phase 'final' and training seed 0 are assumed."""
    source = table.attrs.get("source", "QiD table")
    out = table.copy()
    notes = []
    if "tokens" not in out.columns and "D" in out.columns:
        out["tokens"] = out["D"]
        notes.append("tokens taken from column D")
    if "run" not in out.columns and "checkpoint" in out.columns:
        out["run"] = out["checkpoint"].astype(str)
        notes.append("each checkpoint counted as its own training run")
    if "calib_seed" not in out.columns:
        seeds = out["seed"] if "seed" in out.columns else 0
        out["calib_seed"] = np.where(out["method"].isin(("gptq", "awq")), seeds, np.nan)
        notes.append("calibration seed taken from column seed (GPTQ/AWQ rows)")
    defaults = {"design": "measured", "phase": "final", "train_seed": 0, "size": None, "step": 0}
    for column, value in defaults.items():
        if column not in out.columns:
            out[column] = out["N"].map(lambda n: f"{n:.3g}") if column == "size" else value
            notes.append(f"no column {column}: {'N used' if column == 'size' else repr(value)} assumed")
    if "tokens_per_parameter" not in out.columns:
        out["tokens_per_parameter"] = out["tokens"] / out["N"]
    check_table(out, source, required=("N", "tokens", "method", "bits", "qid", "qid_se"),
                positive=("N", "tokens", "bits"), finite=("qid", "qid_se"))
    if (out["qid_se"] < 0).any():
        raise DataError(f"{source}: column qid_se has negative values (a standard error is >= 0)")
    out.attrs.update(table.attrs)
    return out, notes


def prepare_rows(table: pd.DataFrame, method: str, bits, designs, phases,
                 trained_only: bool = False) -> tuple[pd.DataFrame, dict]:
    """Rows a fit uses — every selected row, whatever its QiD — with the law's columns (P, D), the error model's
    total standard error and the lineage cluster; and the error model's summary. The error model is estimated on
    the whole table (every seed pair and calibration repeat informs it); `trained_only` then keeps the rows of
    checkpoints that beat the bigram baseline (column `beats_bigram`, where present)."""
    with_errors, summary = variance_components(table)
    rows = collapse_calibration_seeds(with_errors)
    chosen = ((rows["method"] == method) & rows["bits"].isin(list(bits)) & rows["design"].isin(list(designs))
              & rows["phase"].isin(list(phases)))
    if trained_only and "beats_bigram" in rows.columns:
        chosen &= rows["beats_bigram"].astype(bool)
    selected = rows[chosen].reset_index(drop=True)
    if selected.empty:
        raise DataError(f"{table.attrs.get('source', 'QiD table')}: no rows for method {method}, bits {list(bits)}, "
                        f"designs {list(designs)}, phases {list(phases)}")
    selected = selected.assign(P=selected["bits"].astype(float), D=selected["tokens"].astype(float),
                               **{CLUSTER: lineage(selected)})
    # A row with no measured spread at all (identical losses) would get infinite weight: it gets the smallest
    # standard error measured on any other row instead, and is counted.
    zero = selected[TOTAL_ERROR] <= 0
    if zero.all():
        raise DataError(f"{table.attrs.get('source', 'QiD table')}: every selected row has a standard error of 0")
    selected.loc[zero, TOTAL_ERROR] = selected.loc[~zero, TOTAL_ERROR].min()
    summary["zero_error_rows"] = int(zero.sum())
    selected.attrs.update(table.attrs)
    return selected, summary


def fit_suite_laws(rows: pd.DataFrame, *, extra_scatter: bool, bootstrap: int, seed: int, confidence: float,
                   responses: np.ndarray | None = None) -> dict:
    """{'ouyang_unified': FitResult, 'kumar_ptq': FitResult, 'ouyang_per_bit': {bits: FitResult}} on `rows`.

    `responses` (bootstrap × rows; optional): QiD re-measured from resampled eval windows per replicate."""
    options = dict(space="linear", errors=TOTAL_ERROR, extra_scatter=extra_scatter, clusters=CLUSTER,
                   bootstrap=bootstrap, seed=seed, confidence=confidence, starts=RANDOM_STARTS, allow_failure=True)
    fits = {}
    for name in ("ouyang_unified", "kumar_ptq"):
        fits[name] = fit_law(name, rows, response_replicates=responses, **options)
    fits["ouyang_per_bit"] = {}
    for bits, group in rows.groupby("P"):
        index = group.index.to_numpy()
        fits["ouyang_per_bit"][int(bits)] = fit_law(
            "ouyang_per_bit", group.reset_index(drop=True),
            response_replicates=None if responses is None else responses[:, index], **options)
    return fits


def exponent_table(fits: dict) -> pd.DataFrame:
    """Every fitted exponent with its bootstrap interval and the published value, one row per (law, parameter)."""
    published = {"ouyang_unified": get_law("ouyang_unified").parameter_sets["published"].values,
                 "kumar_ptq": get_law("kumar_ptq").parameter_sets["published"].values}
    rows = []
    entries = [("ouyang_unified", None, fits["ouyang_unified"]), ("kumar_ptq", None, fits["kumar_ptq"])]
    entries += [("ouyang_per_bit", bits, fit) for bits, fit in fits["ouyang_per_bit"].items()]
    for law, bits, fit in entries:
        for name, value in fit.params.items():
            interval = (fit.intervals or {}).get(name) or [math.nan, math.nan]
            reference = published.get(law, {}).get(name, math.nan)
            rows.append({"law": LAW_LABELS[law] + (f", {bits} bits" if bits else ""), "parameter": name,
                         "value": value, "low": interval[0], "high": interval[1], "published": reference,
                         "identified": fit.identified, "converged": fit.converged})
    return pd.DataFrame(rows)


def _per_bit_totals(per_bit: dict[int, FitResult]) -> dict:
    loglik = sum(fit.log_likelihood for fit in per_bit.values())
    n = sum(fit.n_points for fit in per_bit.values())
    k = sum(fit.n_free + (1 if fit.extra_scatter is not None else 0) for fit in per_bit.values())
    return {"log_likelihood": loglik, "n": n, "k": k,
            "identified": all(fit.identified for fit in per_bit.values()),
            "converged": all(fit.converged for fit in per_bit.values())}


def compare_laws(fits: dict) -> pd.DataFrame:
    """AIC, AICc and BIC of every law on the same rows (the per-bit laws' likelihoods summed), best first."""
    records = []
    for law in ("ouyang_unified", "kumar_ptq"):
        fit = fits[law]
        records.append({"law": LAW_LABELS[law], "log_likelihood": fit.log_likelihood, "n": fit.n_points,
                        "k": fit.n_free + (1 if fit.extra_scatter is not None else 0),
                        "identified": fit.identified, "converged": fit.converged})
    records.append({"law": LAW_LABELS["ouyang_per_bit"], **_per_bit_totals(fits["ouyang_per_bit"])})
    table = pd.DataFrame(records)
    table["AIC"] = -2 * table["log_likelihood"] + 2 * table["k"]
    table["AICc"] = table["AIC"] + 2 * table["k"] * (table["k"] + 1) / (table["n"] - table["k"] - 1).where(table["n"] > table["k"] + 1)
    table["BIC"] = -2 * table["log_likelihood"] + np.log(table["n"]) * table["k"]
    table["ΔAICc"] = table["AICc"] - table["AICc"].min()
    return table.sort_values("AICc").reset_index(drop=True)


def holdout_groups(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The two held-out groups as boolean masks: (every row of the largest size, each size's largest D/N rung)."""
    largest = rows["N"] >= rows["N"].max() * 0.99
    top_rung = rows["tokens_per_parameter"] >= rows.groupby("N")["tokens_per_parameter"].transform("max") * 0.98
    return largest.to_numpy(), top_rung.to_numpy()


def common_holdout(rows: pd.DataFrame) -> np.ndarray:
    """Held-out rows (boolean mask): every row of the largest size, and each other size's largest D/N rung."""
    largest, top_rung = holdout_groups(rows)
    return largest | top_rung


def holdout_scores(rows: pd.DataFrame, held_out: np.ndarray, extra_scatter: bool, seed: int,
                   laws=("ouyang_unified", "kumar_ptq", "ouyang_per_bit", "curved_unified")) -> pd.DataFrame:
    """Each law fitted on the kept rows and scored on the same held-out rows, beside the naive baseline (each held-out
    row predicted by the nearest kept row at its bit width): RMS standardized error (in total standard errors),
    RMS error in nats, the relative bias (mean prediction / mean measurement − 1) and whether the training fit was
    identified. Sorted by RMS standardized error."""
    train, test = rows[~held_out].reset_index(drop=True), rows[held_out].reset_index(drop=True)
    options = dict(space="linear", errors=TOTAL_ERROR, extra_scatter=extra_scatter, seed=seed, starts=RANDOM_STARTS,
                   allow_failure=True)
    predictions, identified = {}, {}
    for law in laws:
        if law == "ouyang_per_bit":
            continue
        fit = fit_law(law, train, **options)
        predictions[law] = np.asarray(fit.predict(N=test["N"].to_numpy(), D=test["D"].to_numpy(), P=test["P"].to_numpy()))
        identified[law] = fit.identified and fit.converged
    if "ouyang_per_bit" in laws:
        per_bit = np.full(len(test), np.nan)
        identified["ouyang_per_bit"] = True
        for bits, group in train.groupby("P"):
            fit = fit_law("ouyang_per_bit", group.reset_index(drop=True), **options)
            mask = (test["P"] == bits).to_numpy()
            per_bit[mask] = fit.predict(N=test.loc[mask, "N"].to_numpy(), D=test.loc[mask, "D"].to_numpy())
            identified["ouyang_per_bit"] &= fit.identified and fit.converged
        predictions["ouyang_per_bit"] = per_bit
    predictions["naive"] = nearest_neighbour_baseline(train, test)
    identified["naive"] = True
    measured, errors = test["qid"].to_numpy(float), test[TOTAL_ERROR].to_numpy(float)
    records = []
    for law, predicted in predictions.items():
        residual = measured - predicted
        records.append({"law": LAW_LABELS[law], "n_train": len(train), "n_test": len(test),
                        "rms_standardized": float(np.sqrt(np.nanmean((residual / errors) ** 2))),
                        "rms_nats": float(np.sqrt(np.nanmean(residual**2))),
                        "relative_bias": float(np.nanmean(predicted) / np.mean(measured) - 1),
                        "train_fit_identified": identified[law]})
    return pd.DataFrame(records).sort_values("rms_standardized").reset_index(drop=True)


def few_point_slope(x: np.ndarray, y: np.ndarray, confidence: float) -> dict:
    """Least-squares slope of y on x with its t interval (n − 2 degrees of freedom): honest for 4 points, where
    a normal quantile (1.96) would be too narrow by a factor t(0.975, 2)/1.96 = 2.2."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3:
        return {"slope": math.nan, "stderr": math.nan, "low": math.nan, "high": math.nan, "dof": n - 2}
    result = stats.linregress(x, y)
    quantile = stats.t.ppf(0.5 + confidence / 2, n - 2)
    return {"slope": result.slope, "stderr": result.stderr, "low": result.slope - quantile * result.stderr,
            "high": result.slope + quantile * result.stderr, "dof": n - 2, "t_quantile": quantile}


def size_prefactors(rows: pd.DataFrame, unified: FitResult) -> pd.DataFrame:
    """Per size: the unified law's prefactor with β and γ held at the global fit and α = 0 (log k_N), so that
    −α is the slope of log k_N on log N over the sizes (`few_point_slope`)."""
    records = []
    fixed = {"alpha": 0.0, "beta": unified.params["beta"], "gamma": unified.params["gamma"]}
    for N, group in rows.groupby("N"):
        fit = fit_law("ouyang_unified", group.reset_index(drop=True), space="linear", errors=TOTAL_ERROR,
                      fixed=fixed, starts=20, allow_failure=True)
        records.append({"N": N, "k": fit.params["k"], "log_N": math.log(N), "log_k": math.log(fit.params["k"]),
                        "rows": len(group), "converged": fit.converged})
    return pd.DataFrame(records)


FINISHED_CHECKPOINTS = (("wsd", "decayed"), ("cosine", "final"))  # (design, phase) of runs whose lr has decayed


def finished_checkpoints(table: pd.DataFrame, selections=FINISHED_CHECKPOINTS) -> pd.DataFrame:
    """Rows of checkpoints at the end of a learning-rate decay (a finished training run at that D): WSD decay
    branches (one per rung) and the cosine runs' last checkpoints; for a table without those designs, its
    'final' rows. Mid-schedule checkpoints (cosine intermediate, WSD stable) have a higher 16-bit loss than a
    run finished at the same D, and would bend the loss law."""
    chosen = np.zeros(len(table), dtype=bool)
    for design, phase in selections:
        chosen |= ((table["design"] == design) & (table["phase"] == phase)).to_numpy()
    if not chosen.any():
        chosen = (table["phase"] == "final").to_numpy()
    return table[chosen]


def loss16_fit(table: pd.DataFrame, selections=FINISHED_CHECKPOINTS) -> FitResult:
    """Chinchilla's form L = E + A/N^α + B/D^β fitted to the 16-bit loss of finished checkpoints (one per run, step)."""
    checkpoints = finished_checkpoints(table, selections).drop_duplicates(["run", "step"])[["N", "tokens", "loss_16", "run"]]
    frame = checkpoints.rename(columns={"tokens": "D", "loss_16": "loss"}).reset_index(drop=True)
    if distinct_count(frame["N"]) < 2 or distinct_count(frame["D"]) < 3:
        raise DataError("the 16-bit loss law needs finished checkpoints at 2+ sizes and 3+ token counts")
    return fit_law("chinchilla", frame, starts=300, seed=0, allow_failure=True)
