"""Epoch AI's replication of Chinchilla (Besiroglu et al. 2024): their points and the published results of
Hoffmann et al.'s fitting procedure on them, the fitter's validation target (chapter 04)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qid.common.paths import SHARED_REFERENCE_DIR
from qid.common.provenance import file_sha256
from qid.common.csvtables import check_table

# Hoffmann et al.'s procedure as options of `fit_law` (their grid is START_GRIDS["chinchilla"]).
HOFFMANN_OPTIONS = {"loss": "huber", "delta": 1e-3, "space": "log", "starts": "grid"}

# Published results of that procedure on Epoch AI's 240 points (Besiroglu et al. 2024; papers.md §5), used
# as the target of the fitter's validation. B is poorly determined: compare on E, alpha, beta, objective.
HOFFMANN_PROCEDURE_ON_EPOCH_DATA = {
    "A": 477.84, "B": 2143.86, "E": 1.8172, "alpha": 0.3473, "beta": 0.3672, "huber_sum": 0.0010183,
}
# Epoch's bootstrap standard errors of their refit (same source), for comparison with ours.
EPOCH_BOOTSTRAP_STDERR = {"A": 124.5, "B": 1293.0, "E": 0.026, "alpha": 0.0154, "beta": 0.0206}
EPOCH_CHINCHILLA_FILE = "chinchilla_svg_extracted_data.csv"
EPOCH_DROPPED_LARGEST_LOSSES = 5  # Epoch's outlier rule: drop the 5 points with the largest loss


def load_epoch_chinchilla(path: str | Path | None = None, drop_largest_losses: int = EPOCH_DROPPED_LARGEST_LOSSES):
    """Epoch AI's points extracted from Hoffmann et al.'s Figure 4, as a table with columns N, D, loss.

    D = training FLOP / (6 N). Third-party data: read from ../shared/reference, never copied into the repo;
    raises FileNotFoundError where it is absent (callers skip).
    """
    path = Path(path) if path is not None else SHARED_REFERENCE_DIR / EPOCH_CHINCHILLA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Epoch's Chinchilla points are not available on this machine")
    raw = pd.read_csv(path)  # not load_table: its '#' comment marker would cut the file's hex colour column
    check_table(raw, str(path), required=["Model Size", "Training FLOP", "loss"], positive=["Model Size", "Training FLOP", "loss"])
    raw = raw.sort_values("loss", kind="stable")
    if drop_largest_losses:
        raw = raw.iloc[:-drop_largest_losses]
    table = pd.DataFrame({
        "N": raw["Model Size"].to_numpy(float),
        "D": raw["Training FLOP"].to_numpy(float) / (6.0 * raw["Model Size"].to_numpy(float)),
        "loss": raw["loss"].to_numpy(float),
    })
    table.attrs["source"] = str(path)
    table.attrs["sha256"] = file_sha256(path)
    return table

