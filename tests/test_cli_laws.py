"""`qid laws`, `qid predict`, `qid tokens-for-qid`: outputs and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from cli_runner import run


def value_of(out: str) -> float:
    """The number of the answer's first line, `QiD = 0.661 nats/token  (...)`."""
    return float(out.splitlines()[0].split("=")[1].split()[0])




def test_predict_prints_the_unified_value(capsys):
    status, out, _ = run(capsys, "predict", "--law", "ouyang_unified", "--params", "published",
                         "--N", "7e10", "--D", "1e14", "--P", "4")
    assert status == 0 and value_of(out) == pytest.approx(0.661, abs=5e-4)
    assert "nats/token" in out.splitlines()[0] and "no interval" in out


def test_tokens_for_qid_prints_the_training_level(capsys):
    status, out, _ = run(capsys, "tokens-for-qid", "--law", "ouyang_unified", "--params", "published",
                         "--N", "1e9", "--P", "2", "--qid", "0.2")
    assert status == 0 and value_of(out) == pytest.approx(1.16e9, rel=5e-3) and "tokens" in out.splitlines()[0]


def test_json_outputs(capsys):
    status, out, _ = run(capsys, "predict", "--law", "kumar_ptq", "--N", "1e8", "--D", "1e10", "--P", "4", "--json")
    payload = json.loads(out)
    assert status == 0 and payload["law"] == "kumar_ptq" and payload["qid"] > 0
    status, out, _ = run(capsys, "laws", "--json")
    names = {entry["law"] for entry in json.loads(out)}
    assert {"ouyang_unified", "ouyang_per_bit", "pythia_loss16", "kumar_ptq", "chinchilla"} <= names


def test_laws_lists_formulas_and_published_sets(capsys):
    status, out, _ = run(capsys, "laws")
    assert status == 0
    assert "QiD = k * D^beta / (N^alpha * P^gamma)" in out and "k=0.017" in out and "[epoch_refit]" in out


def test_params_from_a_fit_json(capsys, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({"law": "ouyang_per_bit", "params": {"k": 2e-4, "alpha": 0.25, "beta": 0.5}}))
    status, out, _ = run(capsys, "predict", "--law", "ouyang_per_bit", "--params", str(path), "--N", "1e8", "--D", "1e10")
    assert status == 0 and value_of(out) == pytest.approx(2e-4 * 1e10 ** 0.5 / 1e8 ** 0.25, rel=1e-5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "--law", "nope", "--N", "1", "--D", "1", "--P", "1"], "unknown law 'nope'"),
        (["predict", "--law", "ouyang_unified", "--params", "nope", "--N", "1", "--D", "1", "--P", "1"], "no parameter set 'nope'"),
        (["predict", "--law", "ouyang_unified", "--N", "1e9", "--P", "4"], "needs --D"),
        (["predict", "--law", "ouyang_unified", "--N", "-1", "--D", "1", "--P", "4"], "--N must be a finite number > 0"),
        (["predict", "--law", "ouyang_unified", "--N", "0", "--D", "1", "--P", "4"], "--N must be a finite number > 0"),
        (["tokens-for-qid", "--law", "ouyang_unified", "--N", "1e9", "--P", "2"], "required: --qid"),
        (["tokens-for-qid", "--law", "ouyang_unified", "--N", "1e9", "--qid", "0.2"], "needs --P"),
        (["predict", "--law", "ouyang_per_bit", "--params", "/no/such/fit.json", "--N", "1", "--D", "1"], "no such fit file"),
    ],
)
def test_bad_input_is_one_error_line_with_status_2(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_module_and_console_entry_points_run():
    result = subprocess.run([sys.executable, "-m", "qid", "predict", "--law", "ouyang_unified",
                             "--N", "7e10", "--D", "1e14", "--P", "4"], capture_output=True, text=True)
    assert result.returncode == 0 and value_of(result.stdout) == pytest.approx(0.661, abs=5e-4)


def test_no_progress_silences_the_libraries_bars_too(capsys, monkeypatch, tmp_path):
    from transformers.utils import logging as transformers_logging

    import qid.cli.measure_commands as measure_commands

    monkeypatch.setattr(measure_commands, "_run_measure", lambda args: 0)  # the options, not a measurement
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)
    transformers_logging.enable_progress_bar()
    try:
        status, _, _ = run(capsys, "measure", "--checkpoints", tmp_path, "--output", tmp_path / "qid.csv")
        assert status == 0 and transformers_logging.is_progress_bar_enabled()
        status, _, _ = run(capsys, "measure", "--checkpoints", tmp_path, "--output", tmp_path / "qid.csv", "--no-progress")
        assert status == 0 and not transformers_logging.is_progress_bar_enabled()
        import os

        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        transformers_logging.enable_progress_bar()
