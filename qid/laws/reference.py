"""Published reference tables the book reproduces, loaded and checked in one place."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qid.common.paths import REFERENCE_DIR
from qid.common.csvtables import load_table

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


# --- the scale gap to Pythia, computed once -------------------------------------------------------------
# Pythia's largest model and its training tokens (Biderman et al. 2023): 12B nominal parameters, and 143,000
# steps of 2,097,152 tokens (about 300B) for every model of the suite.
PYTHIA_LARGEST_N = 1.2e10
PYTHIA_TOKENS = 143_000 * 2_097_152
SUITE_QID_TABLE = REFERENCE_DIR.parent / "suite" / "cpu_qid.csv"


def scale_gap(table: str | Path | pd.DataFrame = SUITE_QID_TABLE) -> dict:
    """How much larger Pythia is than the book's own suite: the factors between the largest N and the largest D.

    `table` is a measured QiD table with columns N and tokens (default: the committed CPU suite); every chapter
    and the landing page state the gap from this one function.
    """
    rows = load_table(table, required=["N", "tokens"], positive=["N", "tokens"]) if not isinstance(table, pd.DataFrame) \
        else table
    largest_N, largest_D = float(rows["N"].max()), float(rows["tokens"].max())
    return {"suite_N_max": largest_N, "suite_D_max": largest_D,
            "pythia_N_max": PYTHIA_LARGEST_N, "pythia_D": float(PYTHIA_TOKENS),
            "N_factor": PYTHIA_LARGEST_N / largest_N, "D_factor": PYTHIA_TOKENS / largest_D}


def scale_gap_statement(table: str | Path | pd.DataFrame = SUITE_QID_TABLE) -> str:
    """The scale gap in one sentence (Markdown), with the numbers from `scale_gap`."""
    gap = scale_gap(table)
    return (f"Pythia's largest model ({gap['pythia_N_max'] / 1e9:.0f} billion parameters) is **{gap['N_factor']:,.0f}×** "
            f"the largest model of the book's suite ({gap['suite_N_max']:,.0f} non-embedding parameters), "
            f"and its {gap['pythia_D'] / 1e9:.0f} billion training tokens are **{gap['D_factor']:,.0f}×** the most any "
            f"suite model saw ({gap['suite_D_max']:,.0f}).")  # in full: "0.2 million" hid 150,080
