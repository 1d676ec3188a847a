"""qid.analysis: row selection, within-slice separate laws, the law comparison, projections with bands."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qid import analysis
from qid.fit import synthetic_table
from qid.laws import get_law
from qid.tables import DataError

TRUTH = {"k": 0.3, "alpha": 0.3, "beta": 0.6, "gamma": 4.0}
DESIGN = {"N": [1e5, 3e5, 1e6, 3e6], "D": [6e4, 1.2e5, 2.5e5, 5e5, 1e6, 2e6], "P": [2, 3, 4]}


def measured_table(noise: float = 0.05, seed: int = 0, relative_se: float = 0.1) -> pd.DataFrame:
    """A table in the suite's tidy QiD format, QiD drawn from the unified law."""
    table = synthetic_table("ouyang_unified", TRUTH, DESIGN, noise=noise, seed=seed)
    table = table.rename(columns={"D": "tokens"})
    table["bits"] = table.pop("P").astype(int)
    table["method"] = "gptq"
    table["phase"] = "intermediate"
    table["design"] = "cosine"
    table["step"] = (table["tokens"] / 2048).round().astype(int)
    table["qid_se"] = relative_se * table["qid"]
    return table


def test_select_fit_rows_filters_and_accounts_for_dropped_rows():
    table = measured_table()
    table.loc[0, "qid_se"] = table.loc[0, "qid"]  # 1 sigma: dropped at 2 sigma
    table.loc[1, "qid"] = -0.01  # negative: always dropped
    extra = table.iloc[:3].assign(method="rtn")
    other_design = table.iloc[:3].assign(design="wsd", phase="stable")
    rows, account = analysis.select_fit_rows(pd.concat([table, extra, other_design]), method="gptq", min_sigma=2.0)
    assert len(rows) == len(table) - 2
    assert {"N", "D", "P", "qid"} <= set(rows.columns)
    assert (rows["D"] == rows["tokens"]).all() and (rows["P"] == rows["bits"]).all()
    assert int(account["candidates"].sum()) == len(table)
    assert int(account["dropped"].sum()) == 2
    # min_step drops early checkpoints; min_sigma = 0 still drops QiD <= 0
    rows_late, _ = analysis.select_fit_rows(table, min_step=int(table["step"].min()))
    assert rows_late["D"].min() > table["tokens"].min()
    rows_zero, _ = analysis.select_fit_rows(table, min_sigma=0.0)
    assert (rows_zero["qid"] > 0).all()


def test_select_fit_rows_names_a_missing_column():
    with pytest.raises(DataError, match="qid_se"):
        analysis.select_fit_rows(measured_table().drop(columns=["qid_se"]))


def test_slice_labels_group_values_within_tolerance():
    frame = pd.DataFrame({"N": [1e5, 1e5, 1.01e5, 3e5], "P": [2, 2, 2, 2]})
    labels = analysis.slice_labels(frame, tolerance=0.05)
    assert labels[0] == labels[1] == labels[2] != labels[3]


@pytest.mark.parametrize("law, exponent", [("ouyang_separate_D", "beta"), ("ouyang_separate_N", "alpha"),
                                           ("ouyang_separate_P", "gamma")])
def test_within_slice_fit_recovers_the_unified_exponents(law, exponent):
    rows, _ = analysis.select_fit_rows(measured_table(noise=0.0))
    fit = analysis.fit_within_slices(rows, law, bootstrap=20, seed=1)
    assert fit.exponent == pytest.approx(TRUTH[exponent], rel=1e-6)
    assert fit.rss == pytest.approx(0.0, abs=1e-18)
    assert fit.interval is not None and fit.interval[0] <= fit.interval[1]


def test_within_slice_fit_matches_a_regression_with_one_intercept_per_slice():
    rows, _ = analysis.select_fit_rows(measured_table(noise=0.2, seed=3))
    fit = analysis.fit_within_slices(rows, "ouyang_separate_D")
    labels = analysis.slice_labels(rows[["N", "P"]], 0.05)
    design = np.column_stack([np.log(rows["D"]), np.eye(labels.max() + 1)[labels]])
    coefficients, *_ = np.linalg.lstsq(design, np.log(rows["qid"]), rcond=None)
    assert fit.exponent == pytest.approx(coefficients[0], rel=1e-9)
    assert fit.n_free == labels.max() + 2
    assert fit.n_slices == 12 and fit.n_informative_slices == 12


def test_within_slice_fit_refuses_an_unidentified_exponent():
    rows, _ = analysis.select_fit_rows(measured_table())
    one_size_per_slice = rows[rows["N"] == rows["N"].min()]
    with pytest.raises(DataError, match="not identified"):
        analysis.fit_within_slices(one_size_per_slice, "ouyang_separate_N")


def test_fit_law_set_compares_every_model_on_the_same_rows():
    rows, _ = analysis.select_fit_rows(measured_table(noise=0.1, seed=2))
    fits = analysis.fit_law_set(rows, bootstrap=10, seed=0, holdout=("N",))
    assert not fits.skipped
    assert set(fits.fits) == set(analysis.LAW_MODELS) and set(fits.per_bit) == {2, 3, 4}
    comparison = analysis.compare_laws(fits)
    assert set(comparison["model"]) == {*analysis.LAW_MODELS, "per_bit", "slices_D", "slices_N", "slices_P"}
    assert (comparison["n_points"] == len(rows)).all()
    assert comparison.iloc[0]["delta_aic"] == 0 and comparison["aic"].is_monotonic_increasing
    # data drawn from the unified law: it (or a model nesting it) wins, the one-variable pooled laws lose
    assert comparison.iloc[0]["model"] in {"unified", "per_bit", "slices_D", "slices_N", "slices_P"}
    assert set(comparison.tail(3)["model"]) == {"pooled_D", "pooled_N", "pooled_P"}
    unified_row = comparison[comparison["model"] == "unified"].iloc[0]
    assert unified_row["aic"] == pytest.approx(fits.fits["unified"].aic)
    assert unified_row["holdout_N_rms_log_error"] < 0.3
    assert math.isnan(comparison[comparison["model"] == "pooled_D"].iloc[0]["holdout_N_rms_log_error"])
    exponents = analysis.exponent_comparison(fits)
    unified_beta = exponents[(exponents["model"] == "unified") & (exponents["exponent"] == "beta")].iloc[0]
    assert unified_beta["estimate"] == pytest.approx(TRUTH["beta"], abs=0.05)
    assert unified_beta["published"] == get_law("ouyang_unified").parameter_sets["published"].values["beta"]


def test_fit_law_set_skips_with_reasons_when_rows_are_few():
    rows, _ = analysis.select_fit_rows(measured_table().iloc[:2])
    fits = analysis.fit_law_set(rows)
    assert not fits.fits and not fits.per_bit and not fits.slices
    assert "unified" in fits.skipped and "per_bit_P2" in fits.skipped
    assert analysis.compare_laws(fits).empty and "aic" in analysis.compare_laws(fits).columns
    assert analysis.exponent_comparison(fits).empty
    empty = analysis.fit_law_set(rows.iloc[:0])
    assert empty.skipped["unified"] == "no significant QiD rows to fit"


def test_tokens_to_threshold_table_brackets_the_estimate():
    rows, _ = analysis.select_fit_rows(measured_table(noise=0.1, seed=4))
    fits = analysis.fit_law_set(rows, bootstrap=30, seed=0, holdout=(), models=["unified", "per_bit"])
    cells = pd.DataFrame({"N": [1e9, 7e10], "P": [2.0, 4.0], "qid": [0.3, 0.5]})
    unified = fits.fits["unified"]
    table = analysis.tokens_to_threshold_table(cells, {2: unified, 4: unified})
    for row in table.itertuples():
        closed_form = (row.qid * row.N ** unified.params["alpha"] * row.P ** unified.params["gamma"]
                       / unified.params["k"]) ** (1 / unified.params["beta"])
        assert row.tokens == pytest.approx(closed_form, rel=1e-8)
        assert row.tokens_low <= row.tokens <= row.tokens_high
    per_bit = analysis.tokens_to_threshold_table(cells, {2: fits.per_bit[2]})
    assert np.isfinite(per_bit["tokens"].iloc[0]) and math.isnan(per_bit["tokens"].iloc[1])


def test_prediction_band_and_scale_gap():
    rows, _ = analysis.select_fit_rows(measured_table(noise=0.1))
    fit = analysis.fit_law_set(rows, bootstrap=20, holdout=(), models=["unified"]).fits["unified"]
    prediction, low, high = analysis.prediction_band(fit, N=1e9, D=np.array([1e10, 1e12]), P=4)
    assert np.all(low <= prediction) and np.all(prediction <= high)
    gap = analysis.scale_gap(rows)
    assert gap["N_factor"] == pytest.approx(1.2e10 / 3e6)
    assert gap["D_factor"] == pytest.approx(3e11 / 2e6)


def test_sensitivity_table_reports_each_variant():
    table = measured_table(noise=0.1)
    variants = {"main": {}, "huber": {"loss": "huber"}, "late only": {"min_step": 500}, "nothing": {"method": "awq"}}
    result = analysis.sensitivity_table(table, {"method": "gptq"}, variants)
    assert list(result["variant"]) == list(variants)
    main = result.set_index("variant").loc["main"]
    assert main["unified beta"] == pytest.approx(TRUTH["beta"], abs=0.05)
    assert main["slices beta"] == pytest.approx(TRUTH["beta"], abs=0.05)
    assert result.set_index("variant").loc["late only", "rows kept"] < main["rows kept"]
    nothing = result.set_index("variant").loc["nothing"]
    assert nothing["rows kept"] == 0 and math.isnan(nothing["unified beta"]) and "no significant" in nothing["note"]
