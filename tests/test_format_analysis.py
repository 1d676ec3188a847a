"""Chapter 08's analysis on a synthetic formats table drawn from known laws: the ranking finds the cell that loses
least, the per-format law recovers its exponents, and the effective bit count is the storage cost when the data
follow one law in bits per weight (and is not when a format loses more than its storage says)."""

import numpy as np
import pandas as pd
import pytest

from qid.chapters import format_analysis
from qid.suite.formats import FORMATS_COLUMNS

TRUTH = {"k": 0.02, "alpha": 0.3, "beta": 0.5, "gamma": 5.0}
STORAGE = {("rtn", 4, -1): 4.3, ("rtn", 4, 32): 4.625, ("fp4", 4, -1): 4.25, ("fp4", 4, 32): 4.5,
           ("mxfp4", 4, 32): 4.25, ("nvfp4", 4, 16): 4.5, ("rtn", 8, -1): 8.3, ("rtn", 8, 32): 8.625}
MXFP4_PENALTY = 1.5  # MXFP4 loses 1.5x what its storage predicts (its power-of-two scales)


def synthetic_table(noise=0.05, seed=0):
    generator = np.random.default_rng(seed)
    rows = []
    for size, N in (("13k", 12768), ("25k", 25472), ("57k", 56640)):
        for train_seed in (0, 1):
            for rung in (5, 10, 20, 40):
                D = rung * N
                for (method, bits, group), storage in STORAGE.items():
                    qid = TRUTH["k"] * D ** TRUTH["beta"] / (N ** TRUTH["alpha"] * storage ** TRUTH["gamma"])
                    qid *= (MXFP4_PENALTY if method == "mxfp4" else 1.0) * (1 + noise * generator.standard_normal())
                    rows.append({"preset": "synthetic", "design": "cosine", "phase": "intermediate",
                                 "run": f"{size}-seed{train_seed}", "size": size, "N": N, "train_seed": train_seed,
                                 "step": rung, "tokens": D, "tokens_per_parameter": rung, "rung": rung, "loss_16": 5.0,
                                 "method": method, "bits": bits, "group_size": group, "bits_per_weight": storage,
                                 "calib_seed": np.nan, "qid": qid, "qid_se": noise * qid, "kl": qid, "kl_se": 0.0,
                                 "top1_agree": 0.9, "eval_windows": 16, "eval_tokens": 1008, "calib_samples": 8,
                                 "batch_size": 8, "threads": 1, "seconds": 1.0})
    return pd.DataFrame(rows)[list(FORMATS_COLUMNS)]


@pytest.fixture(scope="module")
def table():
    return synthetic_table()


def test_ranking_finds_the_cell_with_most_storage_and_separates_it(table):
    ranking = format_analysis.ranking_by_rung(table, bits=4)
    best = format_analysis.winners(ranking)
    assert (best["best"] == "INT4 RTN g32").all() and (best["checkpoints"] == 6).all()
    assert best["separated"].all() and (best["low"] > 0).all()
    assert set(ranking["cell"]) == {"INT4 RTN per channel", "INT4 RTN g32", "FP4 (E2M1) per channel",
                                    "FP4 (E2M1) g32", "MXFP4", "NVFP4"}


def test_per_format_law_recovers_the_exponents(table):
    laws = format_analysis.per_format_laws(table[table["bits"] == 4], ["NVFP4"], bootstrap=30, seed=0)
    fitted = laws.set_index("parameter")
    for name in ("alpha", "beta"):
        assert fitted.loc[name, "low"] <= TRUTH[name] <= fitted.loc[name, "high"]
    assert fitted["identified"].all()


def test_effective_bits_equal_storage_unless_a_format_loses_more(table):
    law, effective = format_analysis.effective_bits(table, bootstrap=40, seed=0)
    assert law.params["gamma"] == pytest.approx(TRUTH["gamma"], rel=0.1)
    effective = effective.set_index("cell")
    for cell in ("NVFP4", "FP4 (E2M1) g32", "FP4 (E2M1) per channel"):
        assert effective.loc[cell, "ratio_low"] <= 1 <= effective.loc[cell, "ratio_high"], cell
    mxfp4 = effective.loc["MXFP4"]
    assert mxfp4["ratio_low"] > 1.3 and mxfp4["effective_bits"] == pytest.approx(4.25 * MXFP4_PENALTY ** (-1 / 5), rel=0.03)


def test_pooled_ranking_averages_each_run_first_and_counts_runs_not_checkpoints(table):
    pooled = format_analysis.ranking_by_run(table, bits=4, min_rung=20)
    assert pooled.iloc[0]["cell"] == "INT4 RTN g32" and (pooled["runs"] == 6).all()
    assert (pooled["checkpoints"] == 12).all()  # rungs 20 and 40 of six runs
    assert (pooled.iloc[1:]["low"] > 0).all()  # every other cell loses resolvably more
    # a run counts once however many checkpoints it has: duplicating one run's checkpoints changes nothing
    extra = table[(table["run"] == "13k-seed0") & (table["rung"] >= 20)].assign(step=lambda t: t["step"] + 1000)
    again = format_analysis.ranking_by_run(pd.concat([table, extra]), bits=4, min_rung=20)
    assert (again["runs"] == 6).all()
    assert np.allclose(again.set_index("cell").loc[pooled["cell"], "minus_best"], pooled["minus_best"])


def test_error_model_gives_each_cell_its_own_training_seed_variance(table):
    with_errors, summary = format_analysis.with_error_model(table)
    assert (with_errors["qid_se_total"] >= with_errors["qid_se"]).all()
    groups = summary["training"]
    assert set(groups["method"]) >= {"MXFP4", "NVFP4", "INT4 RTN g32"}  # one group per cell, not per method
    assert set(with_errors["method"]) == set(table["method"])


def test_pooled_ranking_at_equal_storage_leaves_out_the_costlier_cells(table):
    pooled = format_analysis.ranking_by_run(table, bits=4, min_rung=20, max_bits_per_weight=4.5)
    assert set(pooled["cell"]) == {"INT4 RTN per channel", "FP4 (E2M1) per channel", "FP4 (E2M1) g32", "MXFP4", "NVFP4"}
    assert pooled.iloc[0]["cell"] in ("FP4 (E2M1) g32", "NVFP4")  # the two 4.5-bit cells (equal truth)


def test_held_out_check_passes_a_true_law_and_fails_one_that_bends_in_d():
    """Data drawn from the law with the stated errors score RMS z near 1 on held-out rows; data whose QiD stops
    growing at the top rung (the curvature a power law in D misses) are flagged there, not at the largest N."""
    cells = ["NVFP4", "INT4 RTN per channel"]
    straight = synthetic_table(seed=1)
    scores = format_analysis.per_format_holdout(straight[straight["bits"] == 4], cells, seed=0).set_index("cell")
    assert (scores["n_test"] > 0).all() and scores["identified"].all()
    assert scores["rms_z"].between(0.5, 1.6).all(), scores["rms_z"]
    bent = straight.copy()
    top = bent["rung"] == bent["rung"].max()
    bent.loc[top, ["qid", "qid_se"]] *= 0.6  # the top rung's QiD 40 % below the law
    bent_scores = format_analysis.per_format_holdout(bent[bent["bits"] == 4], cells, seed=0).set_index("cell")
    assert (bent_scores["rms_z_top_rung"] > 4).all(), bent_scores["rms_z_top_rung"]
    assert (bent_scores["rms_z_top_rung"] > bent_scores["rms_z_largest_N"]).all()
