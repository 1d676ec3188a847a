"""`qid fit` on measured tables: errors by default, bits->P and tokens->D, --method/--where, and an exit status
that says when the data do not identify the parameters."""

import json

import pandas as pd
import pytest

from qid.cli import main
from qid.fitting.recovery import heteroscedastic_unified_table

TRUTH = {"k": 0.2, "alpha": 0.3, "beta": 0.5, "gamma": 5.0}


@pytest.fixture
def measured_csv(tmp_path):
    """A table in the measured layout: bits and tokens (not P and D), two quantizers, standard errors."""
    gptq = heteroscedastic_unified_table(TRUTH, [1.3e4, 3.5e4, 7e4, 1.5e5], [5, 20, 80], [2, 3, 4], 0.01, seed=0)
    rtn = gptq.assign(qid=gptq["qid"] * 3.0)
    table = pd.concat([gptq.assign(method="gptq"), rtn.assign(method="rtn")], ignore_index=True)
    table = table.rename(columns={"P": "bits", "D": "tokens"}).drop(columns="qid_true")
    path = tmp_path / "measured.csv"
    table.to_csv(path, index=False)
    return path


def fit(capsys, *arguments):
    status = main(["fit", "--law", "ouyang_unified", "--starts", "100", "--json", *arguments])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip().startswith("{") else None), err


def test_measured_columns_map_and_errors_default_to_qid_se(capsys, measured_csv):
    status, result, err = fit(capsys, "--data", str(measured_csv), "--method", "gptq")
    assert status == 0, err
    assert result["options"]["errors"] == "qid_se" and result["options"]["space"] == "linear"
    assert result["n_points"] == 36 and result["identified"] is True
    assert result["data"]["source_path"] == str(measured_csv)
    assert result["params"]["gamma"] == pytest.approx(TRUTH["gamma"], abs=0.5)


def test_where_filter_and_unidentified_exit_status(capsys, measured_csv):
    # One model size left: N is constant, k and alpha trade off -> not identified, exit 3 with the reason.
    status, result, err = fit(capsys, "--data", str(measured_csv), "--method", "gptq", "--where", "N == 13000 and bits < 8")
    assert status == 3 and result["identified"] is False
    assert any("N takes one value" in reason for reason in result["identification"]) and "not identified" in err
    status, result, _ = fit(capsys, "--data", str(measured_csv), "--method", "gptq", "--where", "N == 13000 and bits < 8",
                            "--accept-unidentified")
    assert status == 0 and result["identified"] is False


@pytest.mark.parametrize("arguments, message", [
    (["--method", "awq"], "no rows with method 'awq'"),
    (["--where", "no_such_column > 1"], "--where"),
    (["--errors", "nope"], "--errors nope: no such column"),
    (["--errors", "none", "--extra-scatter"], "--extra-scatter needs per-row errors"),
])
def test_bad_filters_are_one_line_and_exit_2(capsys, measured_csv, arguments, message):
    status, result, err = fit(capsys, "--data", str(measured_csv), *arguments)
    assert status == 2 and result is None and message in err and err.count("\n") == 1
