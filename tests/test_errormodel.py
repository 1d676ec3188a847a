"""The error model and chapter 05's engine on the synthetic suite table (known variance components and truth)."""

import numpy as np
import pandas as pd
import pytest

from qid.chapters import suite_fits as suitefits
from qid.fitting.errormodel import collapse_calibration_seeds, lineage, variance_components, window_bootstrap_qid
from qid.fitting.printedtable import printed_precision_fit
from qid.laws.reference import load_ouyang_table1
from qid.suite.synthetic import CALIBRATION_CV, SYNTHETIC_TRUTH, WINDOW_SD, WINDOWS, synthetic_suite_tables


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_suite_tables(seed=3)


def test_components_are_recovered_from_the_repeats(synthetic):
    table, _ = synthetic
    rows, summary = variance_components(table)
    assert np.allclose(rows["var_window"], rows["qid_se"] ** 2)
    assert (rows.loc[rows["method"] == "rtn", "var_calibration"] == 0).all()
    # GPTQ 2-bit: the calibration SD is CALIBRATION_CV of QiD; window noise adds WINDOW_SD / sqrt(WINDOWS)
    # per seed but is shared by the seeds' windows only in expectation, so the pooled estimate is close to
    # the sum of the two (within the noise of ~10 checkpoints per group).
    cells = summary["calibration_cells"]
    gptq2 = cells[(cells["method"] == "gptq") & (cells["bits"] == 2)]
    expected = (CALIBRATION_CV * gptq2["qid_mean"]) ** 2 + (WINDOW_SD / np.sqrt(WINDOWS)) ** 2
    assert 0.5 < gptq2["variance"].mean() / expected.mean() < 2.0
    assert len(summary["pairs"]) > 0 and (summary["training"]["relative"] > 0).all()
    assert np.allclose(rows["qid_se_total"] ** 2, rows["var_window"] + rows["var_calibration"] + rows["var_training"])


def test_every_method_with_calibration_seeds_gets_a_calibration_variance(synthetic):
    """GPTQ on a format grid (issue 23) is calibrated too: the error model reads that from the rows' calib_seed,
    not from a list of names (a copy of the quantizers' list missed 'gptq-mxfp4')."""
    table, _ = synthetic
    renamed = table.assign(method=table["method"].replace({"gptq": "gptq-mxfp4"}))
    rows, _ = variance_components(renamed)
    format_rows = rows[rows["method"] == "gptq-mxfp4"]
    assert len(format_rows) and (format_rows["calibration_from"] != "none (no calibration)").all()
    assert (format_rows["var_calibration"] > 0).any()
    assert (rows.loc[rows["method"] == "rtn", "var_calibration"] == 0).all()


def test_collapsing_seeds_keeps_one_row_per_checkpoint_and_shrinks_only_the_calibration_part(synthetic):
    table, _ = synthetic
    rows, _ = variance_components(table)
    collapsed = collapse_calibration_seeds(rows)
    assert not collapsed.duplicated(["run", "step", "method", "bits"]).any()
    repeated = collapsed[collapsed["calibration_seeds"] == 3].iloc[0]
    source = rows[(rows["run"] == repeated["run"]) & (rows["step"] == repeated["step"])
                  & (rows["method"] == repeated["method"]) & (rows["bits"] == repeated["bits"])]
    assert repeated["qid"] == pytest.approx(source["qid"].mean())
    assert repeated["var_calibration"] == pytest.approx(source["var_calibration"].iloc[0] / 3)
    assert len(collapsed) == len(rows.drop_duplicates(["run", "step", "method", "bits"]))


def test_window_bootstrap_resamples_paired_windows(synthetic):
    table, windows = synthetic
    rows = collapse_calibration_seeds(variance_components(table)[0])
    rows = rows[(rows["method"] == "gptq") & (rows["bits"] == 4)].reset_index(drop=True)
    replicates = window_bootstrap_qid(rows, windows, 200, seed=0)
    assert replicates.shape == (200, len(rows))
    # The spread of a row's replicates is its window standard error (SD of the mean over windows).
    ratio = replicates.std(axis=0, ddof=1) / rows["qid_se"]
    assert 0.7 < np.median(ratio) < 1.3
    assert np.allclose(replicates.mean(axis=0), rows["qid"], atol=4 * rows["qid_se"].max())


def test_suite_fit_keeps_every_row_and_recovers_the_unified_law(synthetic):
    table, windows = synthetic
    measured, notes = suitefits.normalize_measured(table)
    assert notes == []
    rows, _ = suitefits.prepare_rows(measured, "gptq", [2, 3, 4], ["cosine"], ["intermediate", "final"])
    assert (rows["qid"] < 0).any()  # nothing dropped for being small or negative
    assert rows[suitefits.CLUSTER].nunique() == 8 and (rows[suitefits.CLUSTER] == lineage(rows)).all()
    responses = window_bootstrap_qid(rows, windows, 40, seed=1)
    fits = suitefits.fit_suite_laws(rows, extra_scatter=True, bootstrap=40, seed=1, confidence=0.95, responses=responses)
    unified = fits["ouyang_unified"]
    assert unified.converged and unified.identified and unified.n_points == len(rows)
    assert unified.bootstrap["resampled"] == "clusters" and unified.bootstrap["responses_resampled"]
    for name in ("alpha", "beta", "gamma"):
        assert abs(unified.params[name] - SYNTHETIC_TRUTH[name]) < 0.15 * SYNTHETIC_TRUTH[name]
    comparison = suitefits.compare_laws(fits)
    assert set(comparison["n"]) == {len(rows)} and comparison["ΔAICc"].iloc[0] == 0
    held_out = suitefits.common_holdout(rows)
    assert rows.loc[held_out, "N"].max() == rows["N"].max() and 0 < held_out.sum() < len(rows)
    scores = suitefits.holdout_scores(rows, held_out, extra_scatter=False, seed=0)
    assert set(scores["n_test"]) == {int(held_out.sum())}


def test_few_point_slope_uses_t_quantiles():
    x = np.log([1.3e4, 3.5e4, 7e4, 1.5e5])
    y = 1.0 - 0.3 * x + np.array([0.01, -0.02, 0.015, -0.005])
    slope = suitefits.few_point_slope(x, y, 0.95)
    assert slope["dof"] == 2 and slope["t_quantile"] == pytest.approx(4.303, abs=1e-3)
    assert slope["low"] < -0.3 < slope["high"]
    assert (slope["high"] - slope["low"]) / 2 == pytest.approx(4.303 * slope["stderr"], rel=1e-3)


def test_a_qid_measure_table_is_accepted_with_stated_assumptions(synthetic):
    table, _ = synthetic
    measure = table[table["method"] == "gptq"].rename(columns={"tokens": "D", "run": "checkpoint", "calib_seed": "seed"})
    measure = measure[["checkpoint", "step", "N", "D", "method", "bits", "qid", "qid_se", "seed", "loss_16"]]
    normalized, notes = suitefits.normalize_measured(measure)
    assert {"design", "phase", "train_seed", "run", "tokens"} <= set(normalized.columns) and len(notes) >= 3
    rows, _ = suitefits.prepare_rows(normalized, "gptq", [2, 3], ["measured"], ["final"])
    assert len(rows) > 0 and rows["P"].isin([2.0, 3.0]).all()


def test_table1_fit_weighted_by_printed_precision_lands_the_2_bit_cells_within_rounding():
    table = load_ouyang_table1()
    fit, misses = printed_precision_fit(table[table["bits"] == 2])
    assert fit.converged and misses.max() <= 1.0
    assert len(misses) == 16
