"""Issue 22, fits and commands: no result that is silently wrong, no error that is not one clear line.

An unidentified fit is not written to --out; a fit file that is unidentified or outside the law's bounds is warned
about or refused; a cluster bootstrap over one cluster is refused; a loss curve without a run name is refused
rather than dropped; train-suite refuses options that would be ignored; chapters 05 and 06 check their
parameters' types; the suite's tables keep one row per cell.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qid.chapters.params import ParameterError, coerce_parameters
from qid.fitting.fit import synthetic_table
from qid.laws.curves import curve_table
from qid.laws.registry import get_law
from qid.laws.schedules import cosine
from test_robustness import assert_one_line_error, run


@pytest.fixture(scope="module")
def one_d_table(tmp_path_factory):
    """QiD data in which D takes one value: the unified law's parameters are not identified."""
    law = get_law("ouyang_unified")
    path = tmp_path_factory.mktemp("one_d") / "one_d.csv"
    synthetic_table(law, law.parameter_sets["published"].values, {"N": [1e8, 1e9, 1e10], "D": [1e10], "P": [2, 3, 4]},
                    noise=0.05, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def good_fit(tmp_path_factory):
    law = get_law("ouyang_unified")
    folder = tmp_path_factory.mktemp("good")
    synthetic_table(law, law.parameter_sets["published"].values, {"N": [1e8, 1e9, 1e10], "D": [1e9, 1e10, 1e11],
                                                                  "P": [2, 3, 4]}, noise=0.05, seed=1).to_csv(folder / "qid.csv", index=False)
    return folder / "qid.csv"


def test_an_unidentified_fit_is_not_written_to_out(capsys, one_d_table, tmp_path):
    out = tmp_path / "fit.json"
    status, _, err = run(capsys, "fit", "--law", "ouyang_unified", "--data", one_d_table, "--starts", 2, "--out", out)
    assert status == 3 and "D takes one value" in err
    assert not out.exists() and "not written" in err


def test_an_accepted_unidentified_fit_is_written_and_predict_warns(capsys, one_d_table, tmp_path):
    out = tmp_path / "fit.json"
    status, _, err = run(capsys, "fit", "--law", "ouyang_unified", "--data", one_d_table, "--starts", 2, "--out", out,
                         "--accept-unidentified")
    assert status == 0 and json.loads(out.read_text())["identified"] is False
    for command in (("predict", "--N", "1e9", "--D", "1e10", "--P", "3"), ("tokens-for-qid", "--N", "1e9", "--P", "3",
                                                                          "--qid", "0.1")):
        status, _, err = run(capsys, command[0], "--law", "ouyang_unified", "--params", out, *command[1:])
        assert status == 0 and "warning:" in err and "not identified" in err, (command, err)


def test_predict_refuses_a_fit_file_with_a_negative_prefactor(capsys, good_fit, tmp_path):
    out = tmp_path / "fit.json"
    assert run(capsys, "fit", "--law", "ouyang_unified", "--data", good_fit, "--starts", 2, "--out", out)[0] == 0
    content = json.loads(out.read_text())
    content["params"]["k"] = -abs(content["params"]["k"])
    out.write_text(json.dumps(content))
    status, _, err = run(capsys, "predict", "--law", "ouyang_unified", "--params", out, "--N", "1e9", "--D", "1e10",
                         "--P", "3")
    assert_one_line_error(status, err, "k = -", "bounds")


def test_the_text_report_never_shows_a_zero_error(capsys, one_d_table, monkeypatch):
    """lmfit prints `+/- 0.00000000 (0.00%)` where its covariance is singular; such an error is never shown."""
    from qid.fitting import fit as fit_module

    real_fit_law = fit_module.fit_law

    def fit_with_zero_error(*args, **kwargs):
        result = real_fit_law(*args, **kwargs)
        for parameter in result.lmfit_result.params.values():
            if parameter.vary:
                parameter.stderr = 0.0  # what lmfit reports on a (near) singular covariance
        return result

    monkeypatch.setattr(fit_module, "fit_law", fit_with_zero_error)
    status, out, _ = run(capsys, "fit", "--law", "ouyang_unified", "--data", one_d_table, "--starts", 2,
                         "--accept-unidentified", "--lmfit-report")
    assert status == 0 and "[[Variables]]" in out
    assert "+/- 0.0000" not in out and "(0.00%)" not in out, out
    status, out, _ = run(capsys, "fit", "--law", "ouyang_unified", "--data", one_d_table, "--starts", 2,
                         "--accept-unidentified")  # the short table
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["k"], ["alpha"], ["beta"], ["gamma"])]
    assert status == 0 and len(rows) == 4 and all(row[2] == "–" for row in rows), out


def test_a_cluster_bootstrap_over_one_cluster_is_refused(capsys, good_fit, tmp_path):
    table = pd.read_csv(good_fit).assign(run="only-run")
    path = tmp_path / "one_cluster.csv"
    table.to_csv(path, index=False)
    status, _, err = run(capsys, "fit", "--law", "ouyang_unified", "--data", path, "--starts", 2, "--bootstrap", 20,
                         "--clusters", "run")
    assert_one_line_error(status, err, "at least 2 clusters", "run")


def _curves(tmp_path, blank_run: bool):
    lr = cosine(300, 20, 1e-3, 1e-4)
    steps = np.arange(30, 300, 15)
    law = get_law("tissue_annealing")
    params = {"L0": 2.0, "A": 0.5, "alpha": 0.5, "C": 200.0, "decay": 0.999}
    runs = {name: {"lr": lr * scale, "steps": steps, "loss": law(params, lr=lr * scale, step=steps)}
            for name, scale in (("a", 1.0), ("b", 0.7))}
    table = curve_table(runs)
    if blank_run:
        table.loc[table["run"] == "b", "run"] = ""
    path = tmp_path / "curves.csv"
    table.to_csv(path, index=False)
    return path


def test_a_loss_curve_without_a_run_name_is_refused_not_dropped(capsys, tmp_path):
    status, _, err = run(capsys, "fit", "--law", "tissue_annealing", "--data", _curves(tmp_path, blank_run=True),
                         "--starts", 1)
    assert_one_line_error(status, err, "column run is empty", "data row")


def test_tokens_for_qid_with_a_curve_law_is_one_line(capsys):
    status, _, err = run(capsys, "tokens-for-qid", "--law", "luo_multipower", "--N", "1e9", "--P", "3", "--qid", "0.1")
    assert_one_line_error(status, err, "luo_multipower", "loss curve")


@pytest.mark.parametrize("extra, words", [
    (("--workers", "0"), ["--workers", "≥ 1"]),
    (("--measure",), ["--measure needs --workers"]),
])
def test_train_suite_refuses_options_it_would_ignore(capsys, tmp_path, monkeypatch, extra, words):
    from qid.suite import pipeline, run as suite_run

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(suite_run, "train_suite", no_training)
    monkeypatch.setattr(pipeline, "run_pipeline", no_training)
    status, _, err = run(capsys, "train-suite", "--runs-dir", tmp_path / "runs", *extra)
    assert_one_line_error(status, err, *words)
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_train_suite_list_refuses_a_runs_dir_that_is_a_file(capsys, tmp_path):
    runs_file = tmp_path / "runs.txt"
    runs_file.write_text("not a folder\n")
    status, out, err = run(capsys, "train-suite", "--runs-dir", runs_file, "--list")
    assert_one_line_error(status, err, "--runs-dir", "is a file")
    assert out == "" and runs_file.read_text() == "not a folder\n"


@pytest.mark.parametrize("chapter, name, value", [
    ("05_fits_on_our_data", "PROJECTION_BITS", "[2.5, 4]"),
    ("05_fits_on_our_data", "BITS", [2, 3.5]),
    ("05_fits_on_our_data", "BOOTSTRAP_SAMPLES", True),
    ("05_fits_on_our_data", "TRAINED_ONLY", "maybe"),
    ("06_learning_rate_schedules", "FIT_SCREEN", True),
    ("06_learning_rate_schedules", "FIT_SCREEN", "true"),
    ("06_learning_rate_schedules", "BOOTSTRAP_SAMPLES", 500.5),
    ("06_learning_rate_schedules", "SIZES", ["7B"]),
])
def test_chapters_05_and_06_check_parameter_types(chapter, name, value):
    with pytest.raises(ParameterError, match=name):
        coerce_parameters(chapter, {name: value})


def test_the_suite_qid_table_keeps_one_row_per_cell(tmp_path):
    """A rerun with another thread count measures every cell again; the tidy table keeps the later row only."""
    from qid.measure.results_table import COLUMNS
    from qid.suite.tables import tidy_qid

    checkpoint = "runs/suite/cpu/cosine/13k-seed0/step-16"
    checkpoints = pd.DataFrame([{"preset": "cpu", "design": "cosine", "phase": "final", "run": "13k-seed0", "size": "13k",
                                 "N": 12768, "train_seed": 0, "step": 16, "tokens": 65536, "tokens_per_parameter": 5.1,
                                 "rung": 5, "epochs": 0.01, "lr": 0.01, "checkpoint": checkpoint}])
    row = {column: "" for column in COLUMNS}
    row.update(family="suite", checkpoint=checkpoint, step=16, N=12768, D=65536, method="rtn", bits=2, group_size=-1,
               loss_16=5.6, loss_q=5.7, qid=0.1, qid_se=0.01, eval_tokens=65024, eval_windows=512, eval_window=128,
               eval_source="corpus:eval", calib_seed=0, batch_size=16, threads=1, finished_at="2026-12-01T00:00:00Z")
    rerun = dict(row, qid=0.2, loss_q=5.8, threads=2, finished_at="2026-12-02T00:00:00Z")
    other = dict(row, bits=3, qid=0.05, loss_q=5.65)
    path = tmp_path / "qid_sweep.csv"
    pd.DataFrame([rerun, row, other], columns=list(COLUMNS)).to_csv(path, index=False)
    table = tidy_qid(path, checkpoints)
    assert len(table) == 2
    kept = table[table["bits"] == 2].iloc[0]
    assert kept["qid"] == pytest.approx(0.2) and kept["threads"] == 2  # the later measurement, and it says which
