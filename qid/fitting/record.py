"""A fitted law as a record (`FitResult`): values, uncertainties, fit statistics, provenance; saved as JSON.

`FitResult.save` writes the file atomically (`qid.common.atomicio`); `load_fit` reads it back, and
`qid.laws.registry.load_fit_parameters` reads the same files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import lmfit
import numpy as np
import pandas as pd

from qid.common.atomicio import atomic_write_text
from qid.fitting.problem import DEFAULT_CONFIDENCE
from qid.laws.registry import Law, get_law, read_fit_file


@dataclass
class FitResult:
    """A fitted law: values, uncertainties, fit statistics and provenance. Saved and loaded as JSON."""

    law: str
    params: dict[str, float]
    stderr: dict[str, float | None]
    stderr_note: str
    objective: float
    objective_name: str
    n_points: int
    n_free: int
    converged: bool
    message: str
    rss: float
    aic: float
    bic: float
    fixed: dict[str, float]
    bounds: dict[str, list]
    options: dict
    starts: dict
    data: dict
    confidence: float = DEFAULT_CONFIDENCE
    intervals: dict[str, list[float]] | None = None
    bootstrap: dict | None = None
    extrapolation: dict | None = None
    aicc: float = math.nan  # AIC with the small-sample correction 2k(k+1)/(n-k-1)
    log_likelihood: float | None = None  # Gaussian, with the known per-row variances (fits with errors only)
    extra_scatter: float | None = None  # fitted relative scatter beyond the known errors (None: not fitted)
    identified: bool = True  # False: some parameter is not determined by these data (see `identification`)
    identification: list = field(default_factory=list)  # why not identified, one sentence each
    provenance: dict = field(default_factory=dict)
    # Not saved: lmfit's result of the polish (for fit_report), the residuals and the fitted table.
    lmfit_result: lmfit.minimizer.MinimizerResult | None = field(default=None, repr=False, compare=False)
    residuals: np.ndarray | None = field(default=None, repr=False, compare=False)
    table: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def law_object(self) -> Law:
        return get_law(self.law)

    def predict(self, **variables) -> np.ndarray:
        """The fitted law at the given N, D, P."""
        return self.law_object(self.params, **variables)

    def bootstrap_predictions(self, **variables) -> np.ndarray:
        """Predictions of every converged bootstrap replicate, shape (replicates, *inputs)."""
        samples = self.bootstrap_samples()
        if samples is None:
            raise ValueError(f"fit of {self.law} has no bootstrap samples (fit again with bootstrap > 0)")
        law = self.law_object
        names = list(samples)
        columns = {name: np.asarray(samples[name], dtype=float) for name in names}
        count = len(columns[names[0]])
        inputs = {name: np.asarray(variables[name], dtype=float) for name in law.variables if name in variables}
        return np.array([law({name: columns[name][i] for name in names} | self.fixed, **inputs) for i in range(count)])

    def prediction_interval(self, confidence: float | None = None, **variables) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap interval of the law's prediction (a confidence band for the mean, not for new points)."""
        confidence = self.confidence if confidence is None else confidence
        predictions = self.bootstrap_predictions(**variables)
        tail = 100 * (1 - confidence) / 2
        return np.percentile(predictions, tail, axis=0), np.percentile(predictions, 100 - tail, axis=0)

    def bootstrap_samples(self) -> dict[str, list[float]] | None:
        if not self.bootstrap or not self.bootstrap.get("samples"):
            return None
        return self.bootstrap["samples"]

    def fit_report(self) -> str:
        """lmfit's report of the polish (only for a fit made in this session), else a summary of the saved values."""
        if self.lmfit_result is not None:
            return lmfit.fit_report(self.lmfit_result)
        lines = [f"[[Fit of {self.law}]] ({self.objective_name} = {self.objective:.6g}, {self.n_points} points)"]
        for name, value in self.params.items():
            error = self.stderr.get(name)
            lines.append(f"    {name}: {value:.6g}" + (f" +/- {error:.3g}" if error is not None else ""))
        return "\n".join(lines)

    def to_dict(self, include_samples: bool = True) -> dict:
        content = {
            "law": self.law,
            "params": self.params,
            "stderr": self.stderr,
            "stderr_note": self.stderr_note,
            "intervals": self.intervals,
            "confidence": self.confidence,
            "objective": self.objective,
            "objective_name": self.objective_name,
            "n_points": self.n_points,
            "n_free": self.n_free,
            "converged": self.converged,
            "message": self.message,
            "rss": self.rss,
            "aic": self.aic,
            "bic": self.bic,
            "aicc": self.aicc,
            "log_likelihood": self.log_likelihood,
            "extra_scatter": self.extra_scatter,
            "identified": self.identified,
            "identification": self.identification,
            "fixed": self.fixed,
            "bounds": self.bounds,
            "options": self.options,
            "starts": self.starts,
            "bootstrap": self.bootstrap,
            "extrapolation": self.extrapolation,
            "data": self.data,
            "provenance": self.provenance,
        }
        if not include_samples and self.bootstrap:
            content["bootstrap"] = {key: value for key, value in self.bootstrap.items() if key != "samples"}
        return jsonable(content)

    def save(self, path: str | Path) -> Path:
        """Write the fit as JSON, unless the file already holds the same fit (rebuilds leave a checkout clean).

        "The same fit" ignores what varies per run, not per result: the `provenance` block (time stamp, commit,
        versions, run time), every `seconds` field and the optimizer's `message`, and numbers that agree to a
        relative SAME_FIT_RELATIVE_TOLERANCE. The fresh provenance then goes to the build output when
        `QID_FIT_PROVENANCE_DIR` is set (`qid.chapters.runner` sets it to `chapters/fit_provenance/`).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        content = self.to_dict()
        try:
            previous = json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError):
            previous = None  # unreadable: rewrite it
        rewritten = previous is None or not same_fit(previous, content)
        if rewritten:
            atomic_write_text(path, json.dumps(content, indent=2) + "\n")
        record_dir = os.environ.get(PROVENANCE_DIR_VARIABLE)
        if record_dir:
            Path(record_dir).mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(record_dir) / f"{path.stem}.json", json.dumps(
                {"file": str(path), "rewritten": rewritten, "provenance": content.get("provenance")}, indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, content: dict) -> "FitResult":
        names = {f for f in cls.__dataclass_fields__ if f not in ("lmfit_result", "residuals", "table")}
        missing = {"law", "params"} - set(content)
        if missing:
            raise ValueError(f"not a fit file: keys {sorted(missing)} are missing")
        values = {key: content.get(key) for key in names}
        defaults = {"stderr": {}, "stderr_note": "", "objective": math.nan, "objective_name": "", "n_points": 0,
                    "n_free": 0, "converged": False, "message": "", "rss": math.nan, "aic": math.nan, "bic": math.nan,
                    "fixed": {}, "bounds": {}, "options": {}, "starts": {}, "data": {}, "provenance": {},
                    "aicc": math.nan, "identified": True, "identification": [],
                    "confidence": DEFAULT_CONFIDENCE}
        for key, default in defaults.items():
            if values.get(key) is None:
                values[key] = default
        params = content["params"]
        if not isinstance(params, dict):
            raise ValueError(f"'params' must be an object of name: number, got a {type(params).__name__}")
        not_numbers = [name for name, value in params.items() if isinstance(value, bool) or not isinstance(value, (int, float))]
        if not_numbers:
            raise ValueError(f"parameter {str(not_numbers[0])[:40]!r} must be a number, got {str(params[not_numbers[0]])[:40]!r}")
        values["params"] = {name: float(value) for name, value in params.items()}
        return cls(**values)


PROVENANCE_DIR_VARIABLE = "QID_FIT_PROVENANCE_DIR"
# Per-run, not per-result: ignored when comparing fits. `message` is the optimizer's termination text, which
# names whichever criterion stopped it first; `best_start` is the start whose local search won, which on a flat
# objective (a curve law's Huber fit) changes with last-bit differences between machines while the optimum does not.
VOLATILE_KEYS = frozenset({"provenance", "seconds", "message", "best_start"})
# Numbers closer than this (relative) are the same number: BLAS and thread counts move a fit's values by ~1e-10
# between machines, and a flat objective's optimum by up to a few 1e-6; the book prints at most 4 significant
# digits. Numbers below SAME_FIT_ABSOLUTE_TOLERANCE in size (a parameter at ~0) compare absolutely.
SAME_FIT_RELATIVE_TOLERANCE = 1e-5
SAME_FIT_ABSOLUTE_TOLERANCE = 1e-15


def same_fit(first, second) -> bool:
    """Whether two fit JSON contents agree on everything but VOLATILE_KEYS (numbers to SAME_FIT_RELATIVE_TOLERANCE)."""
    if isinstance(first, dict) and isinstance(second, dict):
        keys = (set(first) | set(second)) - VOLATILE_KEYS
        return all(key in first and key in second and same_fit(first[key], second[key]) for key in keys)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(same_fit(a, b) for a, b in zip(first, second))
    numbers = (int, float)
    if isinstance(first, numbers) and isinstance(second, numbers) and not isinstance(first, bool) \
            and not isinstance(second, bool):
        return math.isclose(first, second, rel_tol=SAME_FIT_RELATIVE_TOLERANCE, abs_tol=SAME_FIT_ABSOLUTE_TOLERANCE)
    return first == second


def load_fit(path: str | Path) -> FitResult:
    """Read a fit JSON written by `FitResult.save` (or `qid fit --out`); the law must be registered."""
    path = Path(path)
    content = read_fit_file(path)
    try:
        result = FitResult.from_dict(content)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    law = get_law(result.law)
    missing = set(law.parameters) - set(result.params)
    if missing:
        raise ValueError(f"{path}: parameters {sorted(missing)} of law {law.name} are missing")
    return result


def jsonable(value):
    """numpy scalars/arrays to Python; non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return [jsonable(item) for item in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


