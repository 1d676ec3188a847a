"""`qid predict` / `qid tokens-for-qid` answers: units, bootstrap interval from a fit JSON, extrapolation
warnings, refusal of failed fits and of bit widths outside 2-16; `--json` carries the same."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cli_runner import run
from qid.fitting.fit import fit_law, synthetic_table
from qid.laws.registry import get_law




@pytest.fixture(scope="module")
def fit_path(tmp_path_factory):
    """A bootstrapped unified fit on N 1e8..1e10, D 1e9..1e11, P 2..4."""
    law = get_law("ouyang_unified")
    truth = dict(law.parameter_sets["published"].values)
    table = synthetic_table(law, truth, {"N": [1e8, 1e9, 1e10], "D": [1e9, 1e10, 1e11], "P": [2, 3, 4]},
                            noise=0.1, seed=0)
    result = fit_law(law, table, bootstrap=40, seed=0)
    path = tmp_path_factory.mktemp("fit") / "unified.json"
    result.save(path)
    return path


def test_predict_from_a_fit_prints_unit_and_the_bootstrap_interval(capsys, fit_path):
    status, out, err = run(capsys, "predict", "--law", "ouyang_unified", "--params", str(fit_path),
                           "--N", "1e9", "--D", "1e10", "--P", "3")
    assert status == 0 and err == ""  # inside the data: no warning
    first = out.splitlines()[0]
    assert first.startswith("QiD = ") and "nats/token" in first and "95% bootstrap interval" in first
    status, out, _ = run(capsys, "predict", "--law", "ouyang_unified", "--params", str(fit_path),
                         "--N", "1e9", "--D", "1e10", "--P", "3", "--json")
    payload = json.loads(out)
    low, high = payload["interval"]
    assert low < payload["value"] < high and payload["unit"] == "nats/token" and payload["confidence"] == 0.95
    assert payload["fit_range"]["N"] == [1e8, 1e10] and payload["warnings"] == []


def test_far_outside_the_fitted_data_is_warned_about_in_text_and_json(capsys, fit_path):
    arguments = ["predict", "--law", "ouyang_unified", "--params", str(fit_path), "--N", "7e11", "--D", "1e10", "--P", "3"]
    status, out, err = run(capsys, *arguments)
    assert status == 0 and "warning: N = 7e+11 parameters lies 1.8 decades above the fitted data" in err
    status, out, err = run(capsys, *arguments, "--json")
    assert any("decades above" in warning for warning in json.loads(out)["warnings"])
    # Within a decade of the range: no warning.
    status, out, err = run(capsys, "predict", "--law", "ouyang_unified", "--params", str(fit_path),
                           "--N", "5e10", "--D", "2e8", "--P", "3")
    assert status == 0 and err == ""


def test_tokens_for_qid_has_an_interval_and_checks_the_answer_against_the_data(capsys, fit_path):
    status, out, err = run(capsys, "tokens-for-qid", "--law", "ouyang_unified", "--params", str(fit_path),
                           "--N", "1e9", "--P", "3", "--qid", "1e-4", "--json")
    payload = json.loads(out)
    assert status == 0 and payload["unit"] == "tokens" and payload["interval"][0] < payload["D"] < payload["interval"][1]
    assert any("D = " in warning and "decades below" in warning for warning in payload["warnings"])


@pytest.mark.parametrize("bits", ["1", "17"])
def test_bit_widths_outside_2_to_16_are_refused(capsys, bits):
    status, out, err = run(capsys, "predict", "--law", "ouyang_unified", "--N", "1e9", "--D", "1e10", "--P", bits)
    assert status == 2 and out == "" and "--P must be a weight bit width from 2 to 16" in err
    status, out, err = run(capsys, "tokens-for-qid", "--law", "ouyang_unified", "--N", "1e9", "--P", bits, "--qid", "0.1")
    assert status == 2 and "--P must be a weight bit width" in err


def test_failed_or_non_finite_fits_are_refused(capsys, fit_path, tmp_path):
    content = json.loads(fit_path.read_text())
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({**content, "converged": False, "message": "max iterations"}))
    status, out, err = run(capsys, "predict", "--law", "ouyang_unified", "--params", str(failed),
                           "--N", "1e9", "--D", "1e10", "--P", "3")
    assert status == 2 and "did not converge" in err and out == ""
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**content, "params": {**content["params"], "alpha": float("nan")}}))
    status, out, err = run(capsys, "tokens-for-qid", "--law", "ouyang_unified", "--params", str(broken),
                           "--N", "1e9", "--P", "3", "--qid", "0.1")
    assert status == 2 and "alpha" in err and "not finite" in err


def test_published_parameters_say_there_is_no_interval(capsys):
    status, out, _ = run(capsys, "predict", "--law", "ouyang_unified", "--N", "7e10", "--D", "1e14", "--P", "4", "--json")
    payload = json.loads(out)
    assert payload["interval"] is None and "published point estimate" in payload["interval_note"]
    assert np.isclose(payload["qid"], payload["value"])


def test_a_qid_threshold_past_uniform_guessing_is_warned_about(capsys):
    status, _, err = run(capsys, "tokens-for-qid", "--law", "ouyang_unified", "--N", "1e9", "--P", "2", "--qid", "20")
    assert status == 0 and "guessing uniformly" in err and "ln V" in err
    status, _, err = run(capsys, "tokens-for-qid", "--law", "ouyang_unified", "--N", "1e9", "--P", "2", "--qid", "0.2")
    assert status == 0 and "guessing uniformly" not in err


def test_n_is_documented_in_the_units_of_the_parameter_set(capsys):
    status, out, _ = run(capsys, "predict", "--help")
    text = " ".join(re.sub(r"-\n\s*", "-", out).split())  # argparse wraps lines, also after hyphens
    assert status == 0 and "nominal size" in text and "non-embedding parameters for a fit" in text
