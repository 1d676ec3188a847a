"""Fitting a law to a printed table (the paper's Table 1): the only noise is rounding, so each cell is weighted
by how precisely it is printed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from qid.fitting.fit import FitResult, fit_law
from qid.laws.registry import get_law
from qid.laws.projection import tokens_to_reach_qid

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
