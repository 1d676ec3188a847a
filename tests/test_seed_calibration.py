"""The training-seed error model on the committed suite table: its spread matches held-out seeds in every D/N band."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qid.fitting.errormodel import training_seed_pairs, variance_components
from qid.fitting.seedvariance import fit_seed_variance, pair_noise, seed_calibration

SUITE_TABLE = Path(__file__).resolve().parents[1] / "data" / "suite" / "cpu_qid.csv"


@pytest.fixture(scope="module")
def committed():
    table = pd.read_csv(SUITE_TABLE)
    table.attrs["source"] = str(SUITE_TABLE)
    return variance_components(table)


def test_held_out_seed_z_scores_have_unit_spread_in_every_d_over_n_band(committed):
    _, summary = committed
    scores, bands = seed_calibration(summary["pairs"], summary["training"])
    assert len(bands) >= 3 and bands["pairs"].sum() == len(summary["pairs"])
    for band in bands.itertuples():
        assert 0.7 <= band.rms_z <= 1.4, f"D/N {band._2:.0f}-{band._3:.0f}: RMS z {band.rms_z:.2f}"


def test_each_quantizer_sets_its_own_error_and_no_group_is_zero(committed):
    rows, summary = committed
    groups = summary["training"]
    assert not groups.duplicated(["method", "bits", "size"]).any()
    assert set(groups["method"]) == set(summary["pairs"]["method"])
    assert (rows["var_training"] > 0).all() and (groups["dof"] == groups["pairs"] - 2).all()
    assert (groups["inflation"] > 1).all()


def test_the_spread_grows_with_qid():
    """A relative spread is recovered as r, not as one absolute variance (the old pooled model's failure)."""
    rng = np.random.default_rng(0)
    level = np.geomspace(1e-3, 0.3, 60)
    noise = np.full(60, 1e-8)
    difference = rng.normal(0, np.sqrt(2 * (0.2 * level) ** 2 + noise))
    fit = fit_seed_variance(difference, level, noise)
    assert 0.13 < fit["relative"] < 0.27 and fit["floor"] < 1e-3


def test_pairs_count_each_training_seed_difference_once(committed):
    rows, _ = committed
    pairs = training_seed_pairs(rows)
    assert not pairs.duplicated(["size", "rung_index", "method", "bits"]).any()
    assert (pair_noise(pairs) > 0).all()
