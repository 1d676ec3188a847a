"""Fitting the QiD laws to the book's own measurements: which rows enter, every law at once, and projections
with bootstrap bands.

The measured table is the suite's tidy QiD table (`qid.suite.load_suite_table("qid", preset)`: one row per
checkpoint, method and bit width, with `qid` and its standard error `qid_se`). This module

* selects the rows a fit may use (`select_fit_rows`): one quantizer, some bit widths, some checkpoint phases
  and designs, and only QiD significantly above zero (log residuals need QiD > 0); it reports what it drops;
* fits Ouyang et al.'s separate laws the way the paper reads them — one exponent shared by every *slice* of
  the data in which the other variables are held fixed, with a free prefactor per slice
  (`fit_within_slices`, closed-form least squares in logs) — and also pooled, one prefactor for all rows;
* fits the unified law, the per-bit laws and Kumar et al.'s δ_PTQ with `qid.fit.fit_law` (`fit_law_set`)
  and tabulates AIC, BIC and hold-out extrapolation errors on the same rows (`compare_laws`);
* turns a fit's bootstrap replicates into intervals for the training tokens that reach a given QiD
  (`tokens_to_threshold_table`).

A fit that cannot be made (too few significant points, one model size only) is recorded with its reason
instead of raising, so a chapter run on a small table degrades to a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qid.fit import DISTINCT_TOLERANCE, FitError, FitResult, extrapolation_error, fit_law
from qid.laws import OUYANG_SEPARATE_EXPONENTS, get_law
from qid.project import tokens_to_reach_qid
from qid.tables import DataError, check_table

# The measured table's columns this module reads (qid.suite.QID_COLUMNS has more).
REQUIRED_COLUMNS = ("N", "tokens", "bits", "method", "phase", "design", "qid", "qid_se")
COSINE_PHASES = ("intermediate", "final")  # the checkpoints of Pythia-style cosine runs (the paper's data)

# Separate laws: which variable each varies, the sign that turns the fitted log-log slope into the published
# exponent (QiD ∝ D^β, N^(−α), P^(−γ)), and the exponent's name.
SEPARATE_LAWS = {
    "ouyang_separate_D": {"variable": "D", "sign": 1.0, "exponent": "beta"},
    "ouyang_separate_N": {"variable": "N", "sign": -1.0, "exponent": "alpha"},
    "ouyang_separate_P": {"variable": "P", "sign": -1.0, "exponent": "gamma"},
}


# --- which rows enter the fits ---------------------------------------------------------------------------


def select_fit_rows(table: pd.DataFrame, method: str = "gptq", bits=(2, 3, 4), phases=COSINE_PHASES,
                    designs=("cosine",), min_sigma: float = 2.0, min_step: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of a measured QiD table that a law may be fitted to, and an account of what was dropped.

    Keeps one quantizer `method`, the bit widths `bits`, checkpoints of the given `phases` and `designs`
    taken after step `min_step`, and then only rows with qid > min_sigma · qid_se (QiD significantly above
    zero: log residuals need positive values, and a QiD within noise of zero says nothing about its scaling).
    Returns (rows, account): rows with the laws' columns N, D (= tokens), P (= bits) and qid next to the
    original ones; account has one row per bit width: candidates, kept, dropped as not significant.
    """
    check_table(table, table.attrs.get("source", "QiD table"), required=REQUIRED_COLUMNS,
                positive=("N", "tokens", "bits"), finite=("qid", "qid_se"))
    if "step" not in table.columns and min_step:
        raise DataError("min_step given, but the table has no column step")
    if not min_sigma >= 0:
        raise ValueError(f"min_sigma must be >= 0 standard errors, got {min_sigma}")
    mask = (table["method"] == method) & table["bits"].isin(list(bits)) & table["phase"].isin(list(phases)) \
        & table["design"].isin(list(designs))
    if min_step:
        mask &= table["step"] > min_step
    candidates = table[mask]
    significant = candidates["qid"] > min_sigma * candidates["qid_se"]
    if min_sigma == 0:
        significant &= candidates["qid"] > 0
    rows = candidates[significant].copy()
    rows["D"] = rows["tokens"].astype(float)
    rows["P"] = rows["bits"].astype(float)
    rows["N"] = rows["N"].astype(float)
    rows = rows.reset_index(drop=True)
    rows.attrs = {key: value for key, value in table.attrs.items()}
    account = pd.DataFrame({
        "bits": list(bits),
        "candidates": [int((candidates["bits"] == b).sum()) for b in bits],
        "kept": [int((rows["bits"] == b).sum()) for b in bits],
    })
    account["dropped"] = account["candidates"] - account["kept"]
    account["sizes kept"] = [int(rows.loc[rows["bits"] == b, "N"].nunique()) for b in bits]
    return rows, account


# --- separate laws: one exponent shared across slices -----------------------------------------------------


def slice_labels(values: pd.DataFrame, tolerance: float = DISTINCT_TOLERANCE) -> np.ndarray:
    """Integer label per row: rows whose every column agrees within a relative `tolerance` share a label."""
    keys = []
    for column in values.columns:
        ordered = np.sort(values[column].unique())
        groups, representative = {}, None
        for value in ordered:
            if representative is None or value > representative * (1 + tolerance):
                representative = value
            groups[value] = representative
        keys.append(values[column].map(groups).to_numpy())
    frame = pd.DataFrame(dict(enumerate(keys)))
    return frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy()


@dataclass
class SliceFit:
    """A separate law fitted within slices: QiD = k_slice · x^(sign · exponent), one exponent for all slices."""

    law: str
    variable: str
    exponent_name: str
    exponent: float
    stderr: float
    interval: list[float] | None
    confidence: float
    n_points: int
    n_slices: int
    n_informative_slices: int  # slices with at least two distinct values of the variable
    n_free: int  # the exponent and one prefactor per slice
    rss: float
    aic: float
    bic: float
    residuals: np.ndarray = field(repr=False)
    bootstrap_samples: np.ndarray | None = field(default=None, repr=False)

    @property
    def published(self) -> float:
        return OUYANG_SEPARATE_EXPONENTS[self.law][self.exponent_name]


def fit_within_slices(rows: pd.DataFrame, law: str, bootstrap: int = 0, seed: int = 0, confidence: float = 0.95,
                      tolerance: float = 0.05) -> SliceFit:
    """Fit one of Ouyang et al.'s separate laws the way they are read: QiD against one variable, the other two
    held fixed within each slice of the data, one shared exponent and a free prefactor per slice.

    Least squares on log QiD, solved in closed form (the within-slice regression: each slice's prefactor is
    profiled out by centring log x and log QiD within the slice). Slices group rows whose other variables
    agree within the relative `tolerance` (checkpoints of different sizes rarely share a token count exactly).
    The standard error is the usual OLS one with n − (slices + 1) degrees of freedom; the bootstrap resamples
    rows (seeded) and gives a percentile interval.
    """
    if law not in SEPARATE_LAWS:
        raise ValueError(f"unknown separate law {law!r}; use one of {', '.join(SEPARATE_LAWS)}")
    spec = SEPARATE_LAWS[law]
    variable = spec["variable"]
    others = [name for name in ("N", "D", "P") if name != variable]
    check_table(rows, "fit rows", required=["N", "D", "P", "qid"], positive=["N", "D", "P", "qid"])
    labels = slice_labels(rows[others], tolerance)
    x = np.log(rows[variable].to_numpy(float))
    y = np.log(rows["qid"].to_numpy(float))
    slope, residuals, x_centred = _within_slope(x, y, labels)
    n, n_slices = len(rows), int(labels.max()) + 1 if len(rows) else 0
    informative = int(sum(np.ptp(x[labels == g]) > 0 for g in range(n_slices)))
    if informative == 0 or not np.isfinite(slope):
        raise DataError(f"{law}: no slice of the data has two distinct values of {variable}; the exponent is not identified")
    n_free = n_slices + 1
    dof = n - n_free
    if dof <= 0:
        raise DataError(f"{law}: {n} row(s) for {n_free} free parameters (the exponent and {n_slices} slice prefactor(s)); "
                        "a fit needs more rows than free parameters")
    rss = float(residuals @ residuals)
    stderr = math.sqrt(rss / dof / float(x_centred @ x_centred))
    aic = n * math.log(rss / n) + 2 * n_free if rss > 0 else math.nan
    bic = n * math.log(rss / n) + math.log(n) * n_free if rss > 0 else math.nan
    samples, interval = None, None
    if bootstrap:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            index = rng.integers(0, n, size=n)
            draw, _, _ = _within_slope(x[index], y[index], labels[index])
            if np.isfinite(draw):
                draws.append(spec["sign"] * draw)
        samples = np.array(draws)
        if len(samples) >= 2:
            tail = 100 * (1 - confidence) / 2
            interval = [float(v) for v in np.percentile(samples, [tail, 100 - tail])]
    return SliceFit(law=law, variable=variable, exponent_name=spec["exponent"], exponent=float(spec["sign"] * slope),
                    stderr=stderr, interval=interval, confidence=confidence, n_points=n, n_slices=n_slices,
                    n_informative_slices=informative, n_free=n_free, rss=rss, aic=aic, bic=bic,
                    residuals=residuals, bootstrap_samples=samples)


def _within_slope(x: np.ndarray, y: np.ndarray, labels: np.ndarray):
    """Slope of y on x with a free intercept per label; (slope, residuals, centred x). NaN slope if x is constant within every label."""
    counts = np.bincount(labels)
    present = counts > 0
    x_mean = np.zeros(len(counts))
    y_mean = np.zeros(len(counts))
    x_mean[present] = np.bincount(labels, weights=x)[present] / counts[present]
    y_mean[present] = np.bincount(labels, weights=y)[present] / counts[present]
    x_centred, y_centred = x - x_mean[labels], y - y_mean[labels]
    denominator = float(x_centred @ x_centred)
    if denominator <= 1e-12 * max(1.0, float(x @ x)):
        return math.nan, y_centred, x_centred
    slope = float(x_centred @ y_centred) / denominator
    return slope, y_centred - slope * x_centred, x_centred


# --- every law on the same rows ---------------------------------------------------------------------------


@dataclass
class LawFits:
    """The fits of `fit_law_set`: registered-law fits by model name, per-bit fits by bit width, slice fits, and why any were skipped."""

    rows: pd.DataFrame
    fits: dict[str, FitResult] = field(default_factory=dict)  # 'unified', 'kumar', 'pooled_D', ... -> FitResult
    per_bit: dict[int, FitResult] = field(default_factory=dict)
    slices: dict[str, SliceFit] = field(default_factory=dict)  # 'ouyang_separate_D', ... -> SliceFit
    skipped: dict[str, str] = field(default_factory=dict)  # model name -> reason
    per_bit_extrapolation: dict[str, dict] = field(default_factory=dict)  # 'N' / 'D' -> pooled hold-out error
    options: dict = field(default_factory=dict)


# Registered-law models of the comparison: name -> law.
LAW_MODELS = {
    "unified": "ouyang_unified",
    "kumar": "kumar_ptq",
    "pooled_D": "ouyang_separate_D",
    "pooled_N": "ouyang_separate_N",
    "pooled_P": "ouyang_separate_P",
}


def _try_fit(law: str, rows: pd.DataFrame, **options):
    """fit_law, or (None, reason) when the data cannot support the fit."""
    try:
        return fit_law(law, rows, **options), None
    except (DataError, FitError, ValueError) as error:
        return None, str(error).splitlines()[0]


def _holdouts(law_name: str, rows: pd.DataFrame, holdout) -> tuple:
    """The hold-out variables the law depends on and the rows can spare (at least 3 distinct values: 2 left to fit)."""
    law = get_law(law_name)
    usable = []
    for variable in holdout:
        if variable in law.variables and rows[variable].nunique() >= 3:
            usable.append(variable)
    return tuple(usable)


def fit_law_set(rows: pd.DataFrame, *, loss: str = "least_squares", delta: float = 0.1, bootstrap: int = 0,
                seed: int = 0, confidence: float = 0.95, holdout=("N", "D"), slice_tolerance: float = 0.05,
                starts="grid", models=None) -> LawFits:
    """Fit every model of the comparison to the same rows (columns N, D, P, qid; see `select_fit_rows`).

    Models: the unified law, Kumar et al.'s δ_PTQ, one per-bit law per bit width in the rows, the three
    separate laws pooled (one prefactor for all rows) and within slices (one prefactor per slice). Each
    registered-law fit uses `qid.fit.fit_law` with the given loss, Huber `delta` (log units), bootstrap
    replicates and seed, and reports the extrapolation error with the largest value of each `holdout`
    variable held out. A model the rows cannot support is skipped with its reason (`LawFits.skipped`).
    `models` restricts the set (names of LAW_MODELS, 'per_bit', or separate law names).
    """
    wanted = set(models) if models is not None else {*LAW_MODELS, "per_bit", *SEPARATE_LAWS}
    options = dict(loss=loss, delta=delta, bootstrap=bootstrap, seed=seed, confidence=confidence, starts=starts)
    result = LawFits(rows=rows, options={**options, "holdout": list(holdout), "slice_tolerance": slice_tolerance})
    data = rows[["N", "D", "P", "qid"]].astype(float).reset_index(drop=True)
    if len(data) == 0:
        for name in wanted:
            result.skipped[name] = "no significant QiD rows to fit"
        return result
    for name, law in LAW_MODELS.items():
        if name not in wanted:
            continue
        variables = get_law(law).variables
        constant = [v for v in variables if data[v].nunique() < 2]
        if constant:
            result.skipped[name] = f"{', '.join(constant)} takes a single value in the rows: its exponent is not identified"
            continue
        fit, reason = _try_fit(law, data, holdout=_holdouts(law, data, holdout), **options)
        if fit is None:
            result.skipped[name] = reason
        else:
            result.fits[name] = fit
    if "per_bit" in wanted:
        for bits in sorted(data["P"].unique()):
            cells = data[data["P"] == bits]
            key = f"per_bit_P{int(bits)}"
            if cells["N"].nunique() < 2 or cells["D"].nunique() < 2:
                result.skipped[key] = f"{int(bits)}-bit rows span {cells['N'].nunique()} size(s) and {cells['D'].nunique()} token count(s): need ≥ 2 of each"
                continue
            fit, reason = _try_fit("ouyang_per_bit", cells, holdout=_holdouts("ouyang_per_bit", cells, holdout), **options)
            if fit is None:
                result.skipped[key] = reason
            else:
                result.per_bit[int(bits)] = fit
        result.per_bit_extrapolation = _pooled_per_bit_extrapolation(result.per_bit, holdout)
    for law in SEPARATE_LAWS:
        if law not in wanted:
            continue
        try:
            result.slices[law] = fit_within_slices(data, law, bootstrap=bootstrap, seed=seed, confidence=confidence,
                                                   tolerance=slice_tolerance)
        except (DataError, ValueError) as error:
            result.skipped[f"{law} within slices"] = str(error)
    return result


def _pooled_per_bit_extrapolation(per_bit: dict[int, FitResult], holdout) -> dict[str, dict]:
    """RMS log error of the per-bit laws' hold-out predictions, pooled over bit widths (weighted by held-out points)."""
    pooled = {}
    for variable in holdout:
        errors = [fit.extrapolation[variable] for fit in per_bit.values() if fit.extrapolation and variable in fit.extrapolation]
        if not errors or len(errors) < len(per_bit):
            continue
        points = sum(error["n_test"] for error in errors)
        square = sum(error["rms_log_error"] ** 2 * error["n_test"] for error in errors)
        pooled[variable] = {"rms_log_error": math.sqrt(square / points), "n_test": points}
    return pooled


def compare_laws(law_fits: LawFits) -> pd.DataFrame:
    """One row per model fitted to the same rows: free parameters, RMS log residual, AIC, BIC (from the sum
    of squared log residuals: n·ln(RSS/n) + penalty), ΔAIC to the best, and hold-out extrapolation errors
    (RMS log error on the held-out points; NaN where the model cannot extrapolate in that variable)."""
    holdout = law_fits.options.get("holdout", [])
    records = []

    def add(model, law, description, n_points, n_free, rss, extrapolation):
        record = {"model": model, "law": law, "description": description, "n_points": n_points, "n_free": n_free,
                  "rms_log_residual": math.sqrt(rss / n_points) if n_points else math.nan,
                  "aic": n_points * math.log(rss / n_points) + 2 * n_free if rss > 0 else math.nan,
                  "bic": n_points * math.log(rss / n_points) + math.log(n_points) * n_free if rss > 0 else math.nan}
        for variable in holdout:
            record[f"holdout_{variable}_rms_log_error"] = (extrapolation.get(variable) or {}).get("rms_log_error", math.nan)
        records.append(record)

    descriptions = {"unified": "k D^β / (N^α P^γ)", "kumar": "C_T D^γD / N^γN · exp(−P/γ_post)",
                    "pooled_D": "k D^β, one k for all rows", "pooled_N": "k N^−α, one k for all rows",
                    "pooled_P": "k P^−γ, one k for all rows"}
    for name, fit in law_fits.fits.items():
        add(name, fit.law, descriptions.get(name, ""), fit.n_points, fit.n_free, fit.rss, fit.extrapolation or {})
    if law_fits.per_bit and len(law_fits.per_bit) == law_fits.rows["P"].nunique():
        fits = list(law_fits.per_bit.values())
        add("per_bit", "ouyang_per_bit", "k_P D^β_P / N^α_P, one law per bit width",
            sum(f.n_points for f in fits), sum(f.n_free for f in fits), sum(f.rss for f in fits),
            law_fits.per_bit_extrapolation)
    for law, fit in law_fits.slices.items():
        variable = SEPARATE_LAWS[law]["variable"]
        add(f"slices_{variable}", law, f"shared exponent, one prefactor per slice ({fit.n_slices} slices)",
            fit.n_points, fit.n_free, fit.rss, {})
    columns = ["model", "law", "description", "n_points", "n_free", "rms_log_residual", "aic", "bic",
               *[f"holdout_{variable}_rms_log_error" for variable in holdout]]
    table = pd.DataFrame(records, columns=columns)
    table["delta_aic"] = table["aic"] - table["aic"].min() if len(table) else pd.Series(dtype=float)
    if len(table):
        table["delta_aic"] = table["aic"] - table["aic"].min()
        table = table.sort_values("aic", na_position="last").reset_index(drop=True)
    return table


def exponent_comparison(law_fits: LawFits) -> pd.DataFrame:
    """Our exponents next to the published ones: one row per (model, exponent) with the estimate, its
    standard error (lmfit covariance or OLS) and bootstrap interval, and the published value."""
    published_unified = get_law("ouyang_unified").parameter_sets["published"].values
    published_kumar = get_law("kumar_ptq").parameter_sets["published"].values
    records = []

    def add(model, name, estimate, stderr, interval, published):
        low, high = (interval or (math.nan, math.nan))
        records.append({"model": model, "exponent": name, "estimate": estimate,
                        "stderr": math.nan if stderr is None else stderr, "low": low, "high": high,
                        "published": published,
                        "published inside interval": bool(interval is not None and low <= published <= high)})

    for model, fit in law_fits.fits.items():
        intervals = fit.intervals or {}
        if model == "unified":
            for name in ("alpha", "beta", "gamma"):
                add(model, name, fit.params[name], fit.stderr.get(name), intervals.get(name), published_unified[name])
        elif model == "kumar":
            for name in ("gamma_D", "gamma_N", "gamma_post"):
                add(model, name, fit.params[name], fit.stderr.get(name), intervals.get(name), published_kumar[name])
    for bits, fit in law_fits.per_bit.items():
        reference = get_law("ouyang_per_bit").parameter_sets.get(f"unified_P{bits}")
        for name in ("alpha", "beta"):
            add(f"per_bit_P{bits}", name, fit.params[name], fit.stderr.get(name), (fit.intervals or {}).get(name),
                reference.values[name] if reference else math.nan)
    for law, fit in law_fits.slices.items():
        add(f"slices_{fit.variable}", fit.exponent_name, fit.exponent, fit.stderr, fit.interval, fit.published)
    return pd.DataFrame(records, columns=["model", "exponent", "estimate", "stderr", "low", "high", "published",
                                          "published inside interval"])


# --- projections with bands -------------------------------------------------------------------------------


def tokens_to_threshold_table(cells: pd.DataFrame, fits_by_bits: dict, confidence: float = 0.95) -> pd.DataFrame:
    """Training tokens to reach each cell's QiD (columns N, P, qid), with a bootstrap percentile interval.

    `fits_by_bits` maps a bit width to the FitResult used for it (the same unified fit for every width, or
    one per-bit fit each). The interval solves `tokens_to_reach_qid` for every bootstrap replicate of the fit;
    without replicates it is NaN. Tokens are math.inf where even 1e20 tokens stay below the threshold.
    """
    check_table(cells, "threshold cells", required=["N", "P", "qid"], positive=["N", "P", "qid"])
    tail = 100 * (1 - confidence) / 2
    estimates, lows, highs = [], [], []
    for row in cells.itertuples(index=False):
        fit = fits_by_bits.get(int(row.P))
        if fit is None:
            estimates.append(math.nan), lows.append(math.nan), highs.append(math.nan)
            continue
        law = fit.law_object
        estimates.append(tokens_to_reach_qid(law, fit.params, row.qid, N=row.N, P=row.P))
        samples = fit.bootstrap_samples()
        if samples:
            names = list(samples)
            draws = [tokens_to_reach_qid(law, {**fit.fixed, **{name: samples[name][i] for name in names}}, row.qid,
                                         N=row.N, P=row.P) for i in range(len(samples[names[0]]))]
            # A replicate whose law never reaches the threshold gives inf tokens; the interval end is then inf
            # (numpy warns when it interpolates between two infs, which is the answer we want).
            with np.errstate(invalid="ignore"):
                low, high = np.percentile(np.array(draws, dtype=float), [tail, 100 - tail])
            lows.append(float(low)), highs.append(float(high))
        else:
            lows.append(math.nan), highs.append(math.nan)
    out = cells.copy()
    out["tokens"] = estimates
    out["tokens_low"] = lows
    out["tokens_high"] = highs
    return out


def prediction_band(fit: FitResult, confidence: float | None = None, **variables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, low, high) of a fit at the given N, D, P; the band is the bootstrap percentile interval
    (NaN where the fit has no bootstrap replicates)."""
    prediction = np.asarray(fit.predict(**variables), dtype=float)
    if fit.bootstrap_samples() is None:
        nan = np.full_like(prediction, np.nan)
        return prediction, nan, nan
    low, high = fit.prediction_interval(confidence, **variables)
    return prediction, np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def scale_gap(rows: pd.DataFrame, reference_N=(7.0e7, 1.2e10), reference_D=(0.0, 3.0e11)) -> dict:
    """How far the fitted rows are from a reference suite (default: Pythia, 70M–12B parameters, up to 300B
    tokens): the ranges, and the factors between the largest values."""
    return {
        "N_min": float(rows["N"].min()), "N_max": float(rows["N"].max()),
        "D_min": float(rows["D"].min()), "D_max": float(rows["D"].max()),
        "reference_N_min": float(reference_N[0]), "reference_N_max": float(reference_N[1]),
        "reference_D_max": float(reference_D[1]),
        "N_factor": float(reference_N[1] / rows["N"].max()),
        "D_factor": float(reference_D[1] / rows["D"].max()),
        "N_decades": float(np.log10(rows["N"].max() / rows["N"].min())),
        "D_decades": float(np.log10(rows["D"].max() / rows["D"].min())),
    }


# --- loading and sensitivity ------------------------------------------------------------------------------


def load_qid_table(path) -> pd.DataFrame:
    """A measured QiD table (the suite's tidy format, `data/suite/<preset>_qid.csv`), checked column by column."""
    from qid.provenance import file_sha256
    from qid.tables import load_table

    table = load_table(path, required=REQUIRED_COLUMNS, positive=("N", "tokens", "bits"), finite=("qid", "qid_se"))
    table.attrs["source"] = str(path)
    table.attrs["sha256"] = file_sha256(path)
    return table


def sensitivity_table(table: pd.DataFrame, base: dict, variants: dict[str, dict], loss: str = "least_squares",
                      delta: float = 0.1, slice_tolerance: float = 0.05) -> pd.DataFrame:
    """Refit the unified law and the within-slice D law under variations of the row selection or the loss.

    `base` holds `select_fit_rows` keyword arguments; each variant overrides some of them and may set `loss`
    / `delta`. One row per variant: rows kept, the unified law's α, β, γ (no bootstrap: point estimates and
    lmfit standard errors), the within-slice β, or the reason a fit was impossible.
    """
    records = []
    for name, overrides in variants.items():
        overrides = dict(overrides)
        variant_loss = overrides.pop("loss", loss)
        variant_delta = overrides.pop("delta", delta)
        rows, account = select_fit_rows(table, **{**base, **overrides})
        record = {"variant": name, "rows kept": int(account["kept"].sum()), "rows dropped": int(account["dropped"].sum()),
                  "sizes": int(rows["N"].nunique()) if len(rows) else 0, "loss": variant_loss}
        fits = fit_law_set(rows, loss=variant_loss, delta=variant_delta, holdout=(), slice_tolerance=slice_tolerance,
                           models=["unified", "ouyang_separate_D"])
        unified = fits.fits.get("unified")
        for parameter in ("alpha", "beta", "gamma"):
            record[f"unified {parameter}"] = unified.params[parameter] if unified else math.nan
            record[f"unified {parameter} stderr"] = (unified.stderr.get(parameter) if unified else None) or math.nan
        slices = fits.slices.get("ouyang_separate_D")
        record["slices beta"] = slices.exponent if slices else math.nan
        record["slices beta stderr"] = slices.stderr if slices else math.nan
        record["note"] = "; ".join(f"{key}: {reason}" for key, reason in fits.skipped.items())
        records.append(record)
    return pd.DataFrame(records)


# --- fitting a printed table (chapter 01) -------------------------------------------------------------------

PRINTED_HALF_WIDTH_TRILLIONS = 0.5e-4  # Table 1 prints tokens with 4 decimals of trillions: ±0.00005 T


def printed_precision_fit(cells: pd.DataFrame, half_width_trillions: float = PRINTED_HALF_WIDTH_TRILLIONS,
                          rounds: int = 2) -> tuple[FitResult, np.ndarray]:
    """Per-bit law QiD = k·D^β/N^α fitted to printed Table 1 cells, weighted by how precisely each is printed.

    The only noise in a printed table is its rounding: D is known to ±half a unit of the last digit (a
    uniform error, SD = width/√12), which moves log QiD by β·SD/D (through the law). A small D (0.0011 T) is
    known to 3 %, a large one to 1e-5: an unweighted log fit lets the large, exact cells be missed by many
    rounding units. β is taken from the previous round (an unweighted fit first). Returns (fit, miss) where
    miss is each cell's |reproduced − printed| tokens in rounding half-widths (≤ 1: within rounding).

    The fit's standard errors are NOT uncertainties of the paper's law (the paper's own data are not here);
    they say only how far rounding alone could move the parameters."""
    law = get_law("ouyang_per_bit")
    cells = cells.copy()
    fit = fit_law(law, cells)
    standard_deviation = 2 * half_width_trillions / math.sqrt(12) * 1e12
    for _ in range(rounds):
        cells["qid_rounding_se"] = cells["qid"] * fit.params["beta"] * standard_deviation / cells["D"]
        fit = fit_law(law, cells, errors="qid_rounding_se", space="log")
    bits = int(cells["P"].iloc[0])
    reproduced = np.array([tokens_to_reach_qid(law, fit.params, row.qid, N=row.N) for row in cells.itertuples()])
    miss = np.abs(reproduced / 1e12 - cells["tokens_trillions"].to_numpy(float)) / half_width_trillions
    fit.options["weights"] = f"printed precision of Table 1 ({bits}-bit cells, ±{half_width_trillions:g} T)"
    return fit, miss
