"""`qid fit`: the --json keys, --out files that --params reads, one-line errors with exit status 2, exit 1 for
a fit that does not converge, and the generic command reproducing Hoffmann et al.'s procedure on Epoch's points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_runner import run
from qid.fitting.fit import HOFFMANN_PROCEDURE_ON_EPOCH_DATA, load_epoch_chinchilla, load_fit, synthetic_table
from qid.laws.registry import get_law

REGISTRY_NAMES = {
    "chinchilla": {"A", "B", "E", "alpha", "beta"},
    "ouyang_unified": {"k", "alpha", "beta", "gamma"},
    "kumar_ptq": {"C_T", "gamma_D", "gamma_N", "gamma_post"},
}




@pytest.fixture(scope="module")
def unified_csv(tmp_path_factory):
    law = get_law("ouyang_unified")
    design = {"N": [1e8, 4e8, 1e9, 3e9, 1e10], "D": [1e9, 1e10, 1e11], "P": [2, 3, 4]}
    table = synthetic_table(law, law.parameter_sets["published"].values, design, noise=0.1, seed=1)
    path = tmp_path_factory.mktemp("data") / "qid.csv"
    table.to_csv(path, index=False)
    return path


def test_json_output_has_the_documented_keys_and_registry_names(capsys, unified_csv, tmp_path):
    out_path = tmp_path / "fit.json"
    status, out, err = run(capsys, "fit", "--law", "ouyang_unified", "--data", unified_csv, "--bootstrap", 20,
                           "--seed", 3, "--holdout", "N", "--out", out_path, "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert {"law", "params", "stderr", "objective", "n_points", "converged", "intervals", "aic", "bic", "data",
            "options", "provenance", "extrapolation"} <= set(payload)
    assert payload["law"] == "ouyang_unified" and payload["converged"] is True and payload["n_points"] == 45
    assert set(payload["params"]) == set(payload["stderr"]) == REGISTRY_NAMES["ouyang_unified"]
    assert "samples" not in payload["bootstrap"]  # printed without the samples; the file keeps them
    assert payload["extrapolation"]["N"]["n_test"] == 9
    saved = load_fit(out_path)
    assert saved.params == payload["params"] and len(saved.bootstrap["samples"]["k"]) == saved.bootstrap["n_converged"]
    status, out, err = run(capsys, "predict", "--law", "ouyang_unified", "--params", out_path,
                           "--N", "1e9", "--D", "1e11", "--P", "3")
    assert status == 0 and float(out.split("=")[1].split()[0]) == pytest.approx(saved.predict(N=1e9, D=1e11, P=3), rel=1e-5)


@pytest.mark.parametrize("law_name", ["chinchilla", "kumar_ptq"])
def test_parameter_names_are_the_registry_names(capsys, tmp_path, law_name):
    law = get_law(law_name)
    params = law.parameter_sets["published"].values
    design = {"N": [3e7, 1e8, 3e8, 1e9], "D": [1e9, 3e9, 1e10], "P": [3, 4, 6, 8]}
    table = synthetic_table(law, params, {name: design[name] for name in law.variables}, noise=0.01, seed=0)
    path = tmp_path / "data.csv"
    table.to_csv(path, index=False)
    status, out, err = run(capsys, "fit", "--law", law_name, "--data", path, "--starts", 20, "--json")
    assert status == 0, err
    assert set(json.loads(out)["params"]) == REGISTRY_NAMES[law_name]


def test_text_output_is_a_short_parameter_table_and_lmfits_report_on_request(capsys, unified_csv):
    status, out, _ = run(capsys, "fit", "--law", "ouyang_unified", "--data", unified_csv, "--fix", "gamma=5.4967")
    lines = out.splitlines()
    assert status == 0 and "[[Variables]]" not in out and lines[0].split()[:2] == ["parameter", "value"]
    assert any(line.split()[:1] == ["k"] for line in lines) and any("(fixed)" in line for line in lines)
    status, out, _ = run(capsys, "fit", "--law", "ouyang_unified", "--data", unified_csv, "--fix", "gamma=5.4967",
                         "--lmfit-report")
    assert status == 0 and "[[Variables]]" in out and "gamma:  5.4967 (fixed)" in out


def test_a_fit_that_does_not_converge_exits_1_and_says_so(capsys, unified_csv, tmp_path):
    out_path = tmp_path / "failed.json"
    status, out, err = run(capsys, "fit", "--law", "ouyang_unified", "--data", unified_csv, "--starts", 1,
                           "--max-iterations", 1, "--out", out_path, "--json")
    assert status == 1 and json.loads(out)["converged"] is False and "did not converge" in err
    assert json.loads(out_path.read_text())["converged"] is False  # saved, but marked failed


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns=["qid"]), "missing column(s) qid"),
        (lambda t: t.assign(D=-t["D"]), "column D must be > 0"),
        (lambda t: t.assign(qid=np.where(t.index == 0, np.nan, t["qid"])), "missing or non-numeric"),
        (lambda t: t.head(3), "more points than free parameters"),
    ],
)
def test_bad_data_is_one_line_and_exit_2(capsys, tmp_path, unified_csv, change, message):
    import pandas as pd

    path = tmp_path / "bad.csv"
    change(pd.read_csv(unified_csv)).to_csv(path, index=False)
    status, out, err = run(capsys, "fit", "--law", "ouyang_unified", "--data", path)
    assert status == 2 and message in err and err.count("\n") == 1 and out == ""


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--law", "nope"], "unknown law 'nope'"),
        (["--starts", "many"], "--starts must be 'grid' or a positive number"),
        (["--delta", "-1"], "--delta must be a finite number > 0"),
        (["--fix", "gamma"], "--fix expects NAME=VALUE"),
        (["--fix", "zeta=1"], "not parameters of law"),
        (["--loss", "l1"], "invalid choice"),
        (["--bootstrap", "-2"], "--bootstrap must be >= 0"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, unified_csv, extra, message):
    argv = ["fit", "--law", "ouyang_unified", "--data", unified_csv]
    if extra[0] == "--law":
        argv = ["fit", "--data", unified_csv]
    status, _, err = run(capsys, *argv, *extra)
    assert status == 2 and message in err and err.count("\n") == 1


def test_missing_data_file_is_exit_2(capsys, tmp_path):
    status, _, err = run(capsys, "fit", "--law", "chinchilla", "--data", tmp_path / "absent.csv")
    assert status == 2 and "no such file" in err


def test_generic_command_runs_hoffmanns_procedure_on_epochs_points(capsys, tmp_path):
    """`qid fit --law chinchilla --loss huber --delta 1e-3 --space log --starts grid`: all 4500 starts (~30-60 s)."""
    try:
        points = load_epoch_chinchilla()
    except FileNotFoundError as error:
        pytest.skip(f"third-party data absent: {error}")
    path = tmp_path / "chinchilla_points.csv"  # a temporary copy with columns N, D, loss; never in the repo
    points.to_csv(path, index=False)
    status, out, err = run(capsys, "fit", "--law", "chinchilla", "--data", path, "--loss", "huber", "--delta", "1e-3",
                           "--space", "log", "--starts", "grid", "--json")
    assert status == 0, err
    payload = json.loads(out)
    target = HOFFMANN_PROCEDURE_ON_EPOCH_DATA
    assert payload["converged"] and payload["n_points"] == 240 and payload["starts"]["n_run"] == 4500
    for name in ("E", "alpha", "beta"):
        assert payload["params"][name] == pytest.approx(target[name], rel=0.01)
    assert payload["params"]["A"] == pytest.approx(target["A"], rel=0.05)
    assert payload["objective"] == pytest.approx(target["huber_sum"], rel=1e-3)
