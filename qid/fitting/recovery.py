"""Recovery checks of the fitter: data drawn from a law with known parameters, and interval coverage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from qid.fitting.problem import DEFAULT_CONFIDENCE
from qid.laws.registry import Law, get_law
from qid.fitting.optimize import fit_law

# --- validation helpers: synthetic data and interval coverage ---------------------------------------------


def synthetic_table(law: Law | str, params: dict[str, float], design: dict | pd.DataFrame, noise: float,
                    seed: int) -> pd.DataFrame:
    """Data drawn from a law: every combination of the `design` values ({variable: values}, or a table of
    variables), response = law · exp(noise · ε) with ε ~ N(0, 1) (multiplicative, log-normal noise)."""
    law = get_law(law) if isinstance(law, str) else law
    if isinstance(design, pd.DataFrame):
        table = design[list(law.variables)].astype(float).reset_index(drop=True)
    else:
        missing = [name for name in law.variables if name not in design]
        if missing:
            raise ValueError(f"design lacks values of {', '.join(missing)} for law {law.name}")
        grid = list(itertools.product(*(np.atleast_1d(design[name]) for name in law.variables)))
        table = pd.DataFrame(grid, columns=list(law.variables), dtype=float)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0 (standard deviation of the log response), got {noise}")
    rng = np.random.default_rng(seed)
    truth = np.asarray(law(params, **{name: table[name].to_numpy() for name in law.variables}), dtype=float)
    table[law.response] = truth * np.exp(noise * rng.standard_normal(len(table)))
    return table


def coverage_experiment(law: Law | str, params: dict[str, float], design, noise: float, repetitions: int,
                        bootstrap: int, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE, **fit_options) -> pd.DataFrame:
    """Draw `repetitions` data sets from known parameters, fit each, and record whether each parameter's
    interval covers the truth: the Wald interval from lmfit's standard error (on log θ for a log-searched
    parameter) and the bootstrap percentile interval. One row per (repetition, parameter)."""
    from scipy.stats import norm

    law = get_law(law) if isinstance(law, str) else law
    z = float(norm.ppf(0.5 + confidence / 2))
    rows = []
    for repetition in range(repetitions):
        data_seed, bootstrap_seed = seed * 1_000_003 + 2 * repetition, seed * 1_000_003 + 2 * repetition + 1
        table = synthetic_table(law, params, design, noise, data_seed)
        fit = fit_law(law, table, bootstrap=bootstrap, seed=bootstrap_seed, confidence=confidence,
                      allow_failure=True, keep_table=False, **fit_options)
        for name in law.parameters:
            if name in fit.fixed:
                continue
            truth, estimate, error = params[name], fit.params[name], fit.stderr.get(name)
            wald = (None, None)
            if fit.converged and error is not None:
                if name in fit.options["log_parameters"]:
                    wald = (estimate * math.exp(-z * error / estimate), estimate * math.exp(z * error / estimate))
                else:
                    wald = (estimate - z * error, estimate + z * error)
            interval = (fit.intervals or {}).get(name) or (None, None)
            rows.append({
                "repetition": repetition, "parameter": name, "truth": truth, "estimate": estimate,
                "converged": fit.converged, "stderr": error, "wald_low": wald[0], "wald_high": wald[1],
                "bootstrap_low": interval[0], "bootstrap_high": interval[1],
                "wald_covers": wald[0] is not None and wald[0] <= truth <= wald[1],
                "bootstrap_covers": interval[0] is not None and interval[0] <= truth <= interval[1],
            })
    return pd.DataFrame(rows)



def heteroscedastic_unified_table(params: dict[str, float], sizes, tokens_per_parameter, bits, typical_se: float,
                                  seed: int) -> pd.DataFrame:
    """QiD rows drawn from the unified law with additive Gaussian noise of a known, row-varying standard error
    (log-normal around `typical_se`, as eval-window SEs vary): columns N, D, P, qid, qid_se, qid_true.

    With `typical_se` comparable to the 3-4-bit QiD, most of those rows sit within 2 SE of zero (some below
    zero): the case where dropping insignificant rows and fitting logs biases the exponents."""
    law = get_law("ouyang_unified")
    rng = np.random.default_rng(seed)
    grid = pd.DataFrame(list(itertools.product(sizes, tokens_per_parameter, bits)), columns=["N", "ratio", "P"], dtype=float)
    grid["D"] = grid["N"] * grid["ratio"]
    truth = np.asarray(law(params, N=grid["N"].to_numpy(), D=grid["D"].to_numpy(), P=grid["P"].to_numpy()), dtype=float)
    standard_errors = typical_se * np.exp(0.5 * rng.standard_normal(len(grid)))
    return pd.DataFrame({"N": grid["N"], "D": grid["D"], "P": grid["P"], "qid": truth + standard_errors * rng.standard_normal(len(grid)),
                         "qid_se": standard_errors, "qid_true": truth})
