"""The fitter (qid.fitting.fit): objective, bounds and fixed parameters, input errors, JSON round trip (unit level);
synthetic data fitted back with intervals that cover the truth, and Hoffmann et al.'s procedure reproducing
Epoch AI's refit of the Chinchilla points (recovery level)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import huber as scipy_huber

from qid.fitting import fit as fitting
from qid.fitting.fit import (
    GRADIENTS,
    HOFFMANN_OPTIONS,
    HOFFMANN_PROCEDURE_ON_EPOCH_DATA,
    FitError,
    coverage_experiment,
    extrapolation_error,
    fit_law,
    load_epoch_chinchilla,
    load_fit,
    objective_value,
    synthetic_table,
)
from qid.laws.registry import LAWS, OUYANG_SEPARATE_EXPONENTS, Law, get_law, load_fit_parameters, register_law, resolve_parameters
from qid.common.csvtables import DataError

UNIFIED = get_law("ouyang_unified")
PUBLISHED = dict(UNIFIED.parameter_sets["published"].values)
DESIGN = {"N": [1e8, 4e8, 1e9, 3e9, 1e10], "D": [1e9, 1e10, 1e11], "P": [2, 3, 4]}  # 45 points


@pytest.fixture(scope="module")
def noisy_unified() -> pd.DataFrame:
    return synthetic_table(UNIFIED, PUBLISHED, DESIGN, noise=0.1, seed=1)


# --- the objective ------------------------------------------------------------------------------------------


def test_huber_is_scipys_and_the_objective_is_a_sum_not_a_mean():
    residuals = np.array([-3e-3, -5e-4, 0.0, 2e-4, 2e-3])
    assert np.allclose(fitting.huber(residuals, 1e-3), scipy_huber(1e-3, residuals))
    expected = 1e-3 * (3e-3 - 0.5e-3) + 0.5 * (5e-4) ** 2 + 0 + 0.5 * (2e-4) ** 2 + 1e-3 * (2e-3 - 0.5e-3)
    assert objective_value(residuals, "huber", 1e-3) == pytest.approx(expected, rel=1e-12)
    doubled = np.concatenate([residuals, residuals])
    assert objective_value(doubled, "huber", 1e-3) == pytest.approx(2 * expected, rel=1e-12)  # sum, not mean
    assert objective_value(residuals, "least_squares") == pytest.approx(float(residuals @ residuals))
    with pytest.raises(ValueError, match="unknown loss"):
        objective_value(residuals, "l1")


@pytest.mark.parametrize("law_name", ["ouyang_unified", "chinchilla", "pythia_loss16", "kumar_ptq"])
@pytest.mark.parametrize("loss", ["least_squares", "huber"])
@pytest.mark.parametrize("space", ["log", "linear"])
def test_gradient_of_the_objective_matches_finite_differences(law_name, loss, space):
    law = get_law(law_name)
    params = dict(law.parameter_sets[next(iter(law.parameter_sets))].values)
    table = synthetic_table(law, params, DESIGN, noise=0.05, seed=2)
    problem = fitting._build_problem(law, table, loss, 0.02, space, {}, None, None)
    theta = problem.search(np.array([params[name] for name in problem.free])) + 0.01  # off the optimum
    value, gradient = problem.value_and_gradient(theta)
    assert value == pytest.approx(problem.value(theta), rel=1e-12)
    step = 1e-6
    numeric = [(problem.value(theta + step * e) - problem.value(theta - step * e)) / (2 * step) for e in np.eye(len(theta))]
    assert np.allclose(gradient, numeric, rtol=1e-4, atol=1e-8 * max(1.0, value))


@pytest.mark.parametrize("function", list(GRADIENTS), ids=lambda function: function.__name__)
def test_registered_analytic_gradients_agree_with_complex_steps(function):
    law = next(law for law in LAWS.values() if law.function is function)
    params = dict(law.parameter_sets[next(iter(law.parameter_sets))].values)
    table = synthetic_table(law, params, DESIGN, noise=0.0, seed=0)
    problem = fitting._build_problem(law, table, "least_squares", 1e-3, "log", {}, None, None)
    values = np.array([params[name] for name in problem.free])
    analytic_value, analytic = problem.predict_with_jacobian(values)
    complex_value, complex_step = problem._complex_step(values)
    assert np.allclose(analytic_value, complex_value, rtol=1e-12)
    assert np.allclose(analytic, complex_step, rtol=1e-9, atol=0)


def test_a_readers_law_that_is_not_complex_safe_falls_back_to_finite_differences():
    def clipped_power(N, k, alpha):
        """QiD = k · N^(−|α|): np.abs drops a complex step's imaginary part, so complex steps are wrong."""
        return k * np.power(N, -np.abs(alpha))

    law = register_law(Law("test_clipped_power", clipped_power, "qid", "QiD = k * N^-|alpha|", "", "test",
                           bounds={"k": (0, None), "alpha": (0, 3)}))
    try:
        table = synthetic_table(law, {"k": 2.0, "alpha": 0.3}, {"N": np.logspace(6, 10, 12)}, noise=0.02, seed=4)
        result = fit_law(law, table, starts=5, seed=0)
        assert result.options["derivatives"] == "finite-difference"
        assert result.params["alpha"] == pytest.approx(0.3, abs=0.03)
    finally:
        LAWS.pop("test_clipped_power")


# --- fitting: options, bounds, fixed parameters, failures ----------------------------------------------------


def test_least_squares_fit_reports_lmfit_errors_and_aic_bic(noisy_unified):
    result = fit_law(UNIFIED, noisy_unified)
    assert result.converged and result.n_points == 45 and result.n_free == 4
    assert result.objective == pytest.approx(result.rss) and result.objective == pytest.approx(result.lmfit_result.chisqr)
    assert result.aic == pytest.approx(result.lmfit_result.aic) and result.bic == pytest.approx(result.lmfit_result.bic)
    for name in UNIFIED.parameters:
        assert result.stderr[name] > 0
        assert abs(result.params[name] - PUBLISHED[name]) < 4 * result.stderr[name]
    report = result.fit_report()
    assert "[[Variables]]" in report and "alpha:" in report and "k:" in report
    assert result.starts["n_grid"] == math.prod(len(values) for values in fitting.START_GRIDS["ouyang_unified"].values())


def test_huber_fit_shrugs_off_an_outlier_that_pulls_least_squares(noisy_unified):
    spoiled = noisy_unified.copy()
    spoiled.loc[0, "qid"] *= 50.0  # one wild point
    least_squares = fit_law(UNIFIED, spoiled, starts=10)
    robust = fit_law(UNIFIED, spoiled, loss="huber", delta=0.1, starts=10)
    clean = fit_law(UNIFIED, noisy_unified, starts=10)
    assert abs(robust.params["alpha"] - clean.params["alpha"]) < 0.3 * abs(least_squares.params["alpha"] - clean.params["alpha"])
    assert robust.objective == pytest.approx(objective_value(robust.residuals, "huber", 0.1), rel=1e-10)
    assert all(value is None for value in robust.stderr.values()) and "Huber" in robust.stderr_note


def test_fixed_parameters_stay_put_and_bounds_bind(noisy_unified):
    fixed = fit_law(UNIFIED, noisy_unified, fixed={"gamma": 5.0})
    assert fixed.params["gamma"] == 5.0 and fixed.stderr["gamma"] is None and fixed.n_free == 3
    assert "gamma" not in fixed.starts["best_start"] or fixed.starts["best_start"]["gamma"] == 5.0
    bounded = fit_law(UNIFIED, noisy_unified, bounds={"alpha": (0.3, 0.5)})
    assert bounded.params["alpha"] == pytest.approx(0.3, abs=1e-8)  # truth 0.2261 lies below the bound
    assert bounded.bounds["alpha"] == [0.3, 0.5]
    with pytest.raises(ValueError, match="not parameters of law"):
        fit_law(UNIFIED, noisy_unified, fixed={"delta": 1.0})
    with pytest.raises(ValueError, match="not a parameter of law"):
        fit_law(UNIFIED, noisy_unified, bounds={"zeta": (0, 1)})
    with pytest.raises(ValueError, match="outside its bounds"):
        fit_law(UNIFIED, noisy_unified, fixed={"alpha": 5.0})
    with pytest.raises(ValueError, match="nothing to fit"):
        fit_law(UNIFIED, noisy_unified, fixed=PUBLISHED)


def test_random_starts_are_seeded_and_screening_limits_the_runs(noisy_unified):
    first = fit_law(UNIFIED, noisy_unified, starts=7, seed=3)
    again = fit_law(UNIFIED, noisy_unified, starts=7, seed=3)
    other = fit_law(UNIFIED, noisy_unified, starts=7, seed=4)
    assert first.starts["best_start"] == again.starts["best_start"] != other.starts["best_start"]
    assert first.starts["n_run"] == 7
    screened = fit_law(UNIFIED, noisy_unified, screen=10)
    assert screened.starts["n_run"] == 10 and screened.starts["n_grid"] == 625
    assert screened.params["beta"] == pytest.approx(first.params["beta"], rel=1e-6)


def test_linear_space_fit_accepts_what_log_space_refuses():
    # Measured QiD can come out negative where it is small (noise is additive there): no logs of it allowed,
    # but a linear-space fit is fine.
    table = synthetic_table(UNIFIED, PUBLISHED, DESIGN, noise=0.0, seed=0)
    truth = table["qid"].to_numpy().copy()
    table["qid"] = truth + np.random.default_rng(3).normal(0.0, 0.005, len(table))
    assert (table["qid"] <= 0).any()
    with pytest.raises(DataError, match="column qid must be > 0"):
        fit_law(UNIFIED, table, space="log")
    result = fit_law(UNIFIED, table, space="linear", starts=20, seed=1)
    assert result.converged and result.options["space"] == "linear"
    assert result.objective == pytest.approx(float(np.sum((table["qid"] - result.predict(**table)) ** 2)), rel=1e-10)
    assert result.params["gamma"] == pytest.approx(PUBLISHED["gamma"], abs=4 * result.stderr["gamma"])


def test_a_fit_that_does_not_converge_is_reported_failed_never_as_fine(noisy_unified):
    with pytest.raises(FitError, match="did not converge") as caught:
        fit_law(UNIFIED, noisy_unified, starts=1, max_iterations=1)
    assert caught.value.result is not None and caught.value.result.converged is False
    failed = fit_law(UNIFIED, noisy_unified, starts=1, max_iterations=1, allow_failure=True)
    assert failed.converged is False and failed.to_dict()["converged"] is False


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda table: table.drop(columns=["D"]), "missing column"),
        (lambda table: table.assign(N=table["N"].where(table.index != 3, 0.0)), "column N must be > 0"),
        (lambda table: table.assign(qid=table["qid"].where(table.index != 5, -1.0)), "column qid must be > 0"),
        (lambda table: table.assign(qid=table["qid"].where(table.index != 2, np.nan)), "missing or non-numeric"),
        (lambda table: table.head(4), "more points than free parameters"),
    ],
)
def test_bad_inputs_give_one_clear_error(noisy_unified, mutate, message):
    with pytest.raises(DataError, match=message):
        fit_law(UNIFIED, mutate(noisy_unified))


@pytest.mark.parametrize(
    "options, message",
    [({"loss": "l1"}, "unknown loss"), ({"space": "sqrt"}, "unknown space"), ({"delta": 0.0}, "delta"),
     ({"starts": 0}, "starts"), ({"bootstrap": -1}, "bootstrap"), ({"confidence": 1.5}, "confidence")],
)
def test_bad_options_give_one_clear_error(noisy_unified, options, message):
    with pytest.raises(ValueError, match=message):
        fit_law(UNIFIED, noisy_unified, **options)


# --- saving and loading -----------------------------------------------------------------------------------


def test_fit_json_round_trip_and_cli_params_loader(noisy_unified, tmp_path):
    csv = tmp_path / "qid.csv"
    noisy_unified.to_csv(csv, index=False)
    result = fit_law(UNIFIED, csv, bootstrap=30, seed=5)
    path = result.save(tmp_path / "fits" / "unified.json")
    content = json.loads(path.read_text())
    json.dumps(content, allow_nan=False)  # strict JSON: no NaN
    assert content["data"]["sha256"] == fitting.file_sha256(csv) and content["data"]["path"] == str(csv)
    assert content["options"]["loss"] == "least_squares" and content["options"]["seed"] == 5
    assert set(content["provenance"]["package_versions"]) >= {"lmfit", "numpy", "scipy"}
    assert len(content["bootstrap"]["samples"]["alpha"]) == content["bootstrap"]["n_converged"] > 25
    loaded = load_fit(path)
    assert loaded.params == result.params and loaded.stderr == result.stderr and loaded.intervals == result.intervals
    point = {"N": 7e9, "D": 2e12, "P": 3}
    assert loaded.predict(**point) == pytest.approx(result.predict(**point), rel=1e-12)
    low, high = loaded.prediction_interval(**point)
    assert low < loaded.predict(**point) < high
    assert load_fit_parameters(path) == ("ouyang_unified", result.params)
    assert resolve_parameters(UNIFIED, str(path)) == result.params


def test_load_fit_rejects_what_is_not_a_fit(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "short.json").write_text(json.dumps({"law": "chinchilla", "params": {"A": 1.0}}))
    with pytest.raises(ValueError, match="not valid JSON"):
        load_fit(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not a fit file"):
        load_fit(tmp_path / "other.json")
    with pytest.raises(ValueError, match="missing"):
        load_fit(tmp_path / "short.json")
    with pytest.raises(FileNotFoundError):
        load_fit(tmp_path / "absent.json")


# --- the separate laws ---------------------------------------------------------------------------------------


def test_separate_laws_carry_exponents_but_no_invented_prefactor():
    for name, exponents in OUYANG_SEPARATE_EXPONENTS.items():
        law = get_law(name)
        assert law.parameter_sets == {} and law.response == "qid"
        (exponent, value), = exponents.items()
        assert str(value) in law.function.__doc__ and exponent in law.parameters
    table = synthetic_table("ouyang_separate_D", {"k": 3e-7, "beta": 0.5316}, {"D": np.logspace(9, 11.5, 10)}, 0.05, seed=7)
    result = fit_law("ouyang_separate_D", table, fixed=OUYANG_SEPARATE_EXPONENTS["ouyang_separate_D"])
    assert result.params["beta"] == 0.5316 and result.params["k"] == pytest.approx(3e-7, rel=0.1)


# --- recovery: synthetic data and interval coverage -----------------------------------------------------------


def test_extrapolation_error_is_zero_on_noise_free_data_and_counts_the_held_out_size():
    table = synthetic_table(UNIFIED, PUBLISHED, DESIGN, noise=0.0, seed=0)
    error = extrapolation_error(UNIFIED, table, "N")
    assert error["n_test"] == 9 and error["n_train"] == 36 and error["held_out_from"] == pytest.approx(0.99e10)
    assert error["rms_log_error"] < 1e-6
    noisy = extrapolation_error(UNIFIED, synthetic_table(UNIFIED, PUBLISHED, DESIGN, noise=0.1, seed=0), "D", top=2)
    assert noisy["n_test"] == 30 and noisy["rms_log_error"] > 1e-3
    with pytest.raises(ValueError, match="does not depend on"):
        extrapolation_error("ouyang_per_bit", table, "P")


def test_intervals_cover_the_truth_at_about_their_nominal_rate():
    # 40 data sets x 4 parameters: a 95 % interval should miss about 8 of 160; broken intervals miss far more.
    coverage = coverage_experiment(UNIFIED, PUBLISHED, DESIGN, noise=0.1, repetitions=40, bootstrap=100, seed=0, starts=1)
    assert coverage["converged"].all()
    assert 0.88 <= coverage["wald_covers"].mean() <= 1.0
    assert 0.85 <= coverage["bootstrap_covers"].mean() <= 1.0
    # and not by being uselessly wide: the bootstrap interval is about as wide as 2 × 1.96 standard errors
    natural = coverage[coverage["parameter"] != "k"]
    ratio = (natural["bootstrap_high"] - natural["bootstrap_low"]) / (2 * 1.96 * natural["stderr"])
    assert 0.7 < ratio.median() < 1.3


# --- recovery: Hoffmann et al.'s procedure on Epoch AI's Chinchilla points -------------------------------------


@pytest.fixture(scope="module")
def chinchilla_points():
    try:
        return load_epoch_chinchilla()
    except FileNotFoundError as error:
        pytest.skip(f"third-party data absent: {error}")


def test_epoch_points_load_as_240_rows_with_tokens_from_flop(chinchilla_points):
    assert len(chinchilla_points) == 240 and list(chinchilla_points.columns) == ["N", "D", "loss"]
    raw = pd.read_csv(fitting.SHARED_REFERENCE_DIR / fitting.EPOCH_CHINCHILLA_FILE)
    assert chinchilla_points["loss"].max() <= raw["loss"].nlargest(6).iloc[-1]  # the 5 largest losses dropped
    kept = raw.sort_values("loss", kind="stable").iloc[:240]
    assert np.allclose(np.sort(chinchilla_points["N"] * chinchilla_points["D"] * 6), np.sort(kept["Training FLOP"]))


def test_hoffmann_procedure_screened_grid_reproduces_epochs_refit(chinchilla_points):
    # The full 4500-start grid runs in tests/test_fit_cli.py through `qid fit`; here the 100 best starts.
    result = fit_law("chinchilla", chinchilla_points, **HOFFMANN_OPTIONS, screen=100)
    target = HOFFMANN_PROCEDURE_ON_EPOCH_DATA
    for name in ("E", "alpha", "beta"):
        assert result.params[name] == pytest.approx(target[name], rel=0.01)
    assert result.params["A"] == pytest.approx(target["A"], rel=0.05)
    assert result.objective == pytest.approx(target["huber_sum"], rel=1e-3)
    assert result.objective_name.startswith("sum of Huber")


def test_the_recorded_hash_is_that_of_the_points_fitted_not_of_the_file_they_came_from(noisy_unified, tmp_path):
    csv = tmp_path / "qid.csv"
    noisy_unified.to_csv(csv, index=False)
    table = pd.read_csv(csv)
    table.attrs.update(source=str(csv), sha256=fitting.file_sha256(csv))
    whole = fit_law(UNIFIED, table, starts=3)
    subset = fit_law(UNIFIED, table[table["P"] > 2], starts=3)
    assert whole.data["source_sha256"] == subset.data["source_sha256"] == fitting.file_sha256(csv)
    assert subset.data["sha256"] != whole.data["sha256"] and subset.data["n_points"] == 30
