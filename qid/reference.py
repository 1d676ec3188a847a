"""Published reference tables the book reproduces, loaded and checked in one place."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qid.paths import REFERENCE_DIR
from qid.tables import load_table

TABLE1_PATH = REFERENCE_DIR / "ouyang2024_table1.csv"
TOKENS_PER_TRILLION = 1e12


def load_ouyang_table1(path: str | Path = TABLE1_PATH) -> pd.DataFrame:
    """Ouyang et al. (2024) Table 1 as a tidy table with the law's column names.

    Adds `N` (the nominal size, the reading of N that reproduces the table), `D` (tokens), `P` (bits) and
    `qid` (the threshold), so the table can be handed to the fitter and the laws directly.
    """
    table = load_table(
        path,
        required=["size", "n_params_nominal", "bits", "qid_threshold", "tokens_trillions"],
        positive=["n_params_nominal", "bits", "qid_threshold", "tokens_trillions"],
    )
    return table.assign(
        N=table["n_params_nominal"].astype(float),
        D=table["tokens_trillions"] * TOKENS_PER_TRILLION,
        P=table["bits"].astype(float),
        qid=table["qid_threshold"].astype(float),
    )
