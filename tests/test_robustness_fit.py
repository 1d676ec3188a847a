"""Issue 11, fitting side: `qid fit` and fit files under bad input and faults — one line and exit status 2
(130 for Ctrl-C), bounded messages and inputs, and a previous --out file intact after a full disk."""

from __future__ import annotations

import errno
import json

import pytest

from qid.common import atomicio, csvtables as tables

from qid.fitting import fit
from qid.fitting.fit import synthetic_table
from qid.laws.registry import get_law
from test_robustness import assert_one_line_error, run


@pytest.fixture(scope="module")
def unified_tables(tmp_path_factory):
    """Two synthetic QiD tables of the unified law (different noise: their fits differ)."""
    law = get_law("ouyang_unified")
    design = {"N": [1e8, 1e9, 1e10], "D": [1e9, 1e10, 1e11], "P": [2, 3, 4]}
    paths = []
    for seed in (1, 2):
        path = tmp_path_factory.mktemp("data") / f"qid{seed}.csv"
        synthetic_table(law, law.parameter_sets["published"].values, design, noise=0.05, seed=seed).to_csv(path, index=False)
        paths.append(path)
    return paths


def fit_command(data, *extra):
    return ("fit", "--law", "ouyang_unified", "--data", data, "--starts", 2, *extra)


def test_full_disk_keeps_the_previous_fit_json(capsys, unified_tables, tmp_path, monkeypatch):
    out = tmp_path / "fit.json"
    status, _, err = run(capsys, *fit_command(unified_tables[0], "--out", out))
    assert status == 0, err
    before = out.read_bytes()

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomicio.os, "fsync", disk_full)
    status, _, err = run(capsys, *fit_command(unified_tables[1], "--out", out))
    assert_one_line_error(status, err, "No space left on device")
    assert out.read_bytes() == before and json.loads(before)["law"] == "ouyang_unified"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.json"]  # no temporary file left behind


def test_ctrl_c_during_a_fit_exits_130_saying_nothing_was_written(capsys, unified_tables, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "fit_law", interrupted)
    out = tmp_path / "fit.json"
    status, _, err = run(capsys, *fit_command(unified_tables[0], "--out", out))
    assert status == 130 and "Traceback" not in err and "interrupted" in err and "no output file" in err
    assert not out.exists()


@pytest.mark.parametrize("content, words", [
    ('{"law": "ouyang_unified", "params": {"k": null, "alpha": 0.3, "beta": 0.2, "gamma": 5}}', ["'k'", "must be a number"]),
    ('{"law": "ouyang_unified", "params": [1, 2, 3, 4]}', ["'params' must be an object"]),
    (b"\xff\xfe\x00", ["not valid JSON"]),
])
def test_a_malformed_fit_json_is_one_line(capsys, tmp_path, content, words):
    path = tmp_path / "fit.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    status, _, err = run(capsys, "predict", "--law", "ouyang_unified", "--params", path, "--N", "1e9", "--D", "1e10", "--P", "3")
    assert_one_line_error(status, err, str(path), *words)


def test_a_one_line_data_file_gives_a_short_message(capsys, tmp_path):
    data = tmp_path / "one_line.csv"
    data.write_text("x" * 300_000)  # the old message quoted the whole line as the list of columns
    status, _, err = run(capsys, *fit_command(data))
    assert_one_line_error(status, err, str(data))
    assert len(err) < 600


def test_a_table_too_large_is_refused_before_reading(tmp_path):
    data = tmp_path / "huge.csv"
    with open(data, "wb") as handle:  # sparse: no disk or memory used
        handle.truncate(tables.MAX_TABLE_BYTES + 1)
    with pytest.raises(tables.DataError, match="MiB"):
        tables.load_table(data)


def test_a_folder_as_data_is_one_line(capsys, tmp_path):
    status, _, err = run(capsys, *fit_command(tmp_path))
    assert_one_line_error(status, err, "is a folder")


def test_an_unreadable_data_file_is_one_line(capsys, unified_tables, monkeypatch):
    import pandas

    def refuse(*args, **kwargs):  # chmod 000 does not stop root, who runs the tests in CI
        raise PermissionError(errno.EACCES, "Permission denied", str(unified_tables[0]))

    monkeypatch.setattr(pandas, "read_csv", refuse)
    status, _, err = run(capsys, *fit_command(unified_tables[0]))
    assert_one_line_error(status, err, "Permission denied", unified_tables[0].name)


# ----------------------------------------- identifiability and predict (built by the fits and book helpers)
@pytest.fixture(scope="module")
def one_d_fit(tmp_path_factory):
    law = get_law("ouyang_unified")
    folder = tmp_path_factory.mktemp("one_d")
    synthetic_table(law, law.parameter_sets["published"].values, {"N": [1e8, 1e9, 1e10], "D": [1e10], "P": [2, 3, 4]},
                    noise=0.05, seed=1).to_csv(folder / "one_d.csv", index=False)
    return folder / "one_d.csv"


def test_a_fit_on_one_d_is_not_called_identified(capsys, one_d_fit, tmp_path):
    out = tmp_path / "fit.json"
    status, out_text, err = run(capsys, *fit_command(one_d_fit, "--out", out))
    assert status == 3 and "D takes one value" in err and "± 0.0000" not in out_text
    assert not out.exists()  # an unidentified fit is not written unless accepted (issue 22)
    status, _, err = run(capsys, *fit_command(one_d_fit, "--accept-unidentified", "--out", out))
    assert status == 0, err
    saved = json.loads(out.read_text())
    assert saved["identified"] is False and any("D takes one value" in reason for reason in saved["identification"])


@pytest.mark.parametrize("change, words", [
    (lambda fit_json: fit_json.update(converged=False), ["did not converge"]),
    (lambda fit_json: fit_json["params"].update(k=float("nan")), ["not finite"]),
])
def test_predict_refuses_a_failed_or_non_finite_fit(capsys, unified_tables, tmp_path, change, words):
    out = tmp_path / "fit.json"
    assert run(capsys, *fit_command(unified_tables[0], "--out", out))[0] == 0
    content = json.loads(out.read_text())
    change(content)
    out.write_text(json.dumps(content))
    status, _, err = run(capsys, "predict", "--law", "ouyang_unified", "--params", out, "--N", "1e9", "--D", "1e10", "--P", "3")
    assert_one_line_error(status, err, *words)


@pytest.mark.parametrize("bits", ["1", "17"])
def test_predict_refuses_bit_widths_outside_2_to_16(capsys, bits):
    status, _, err = run(capsys, "predict", "--law", "ouyang_unified", "--N", "1e9", "--D", "1e10", "--P", bits)
    assert_one_line_error(status, err, "--P", "2 to 16")


@pytest.mark.parametrize("make_target, words", [
    (lambda folder: folder, ["is a folder"]),
    (lambda folder: folder / "weights.safetensors", ["is not a fit JSON", "refusing to replace"]),
    (lambda folder: folder / "table.csv", ["is not a fit JSON", "refusing to replace"]),
])
def test_fit_out_refuses_a_folder_or_a_file_that_is_not_a_fit(capsys, unified_tables, tmp_path, make_target, words):
    (tmp_path / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + bytes(64))
    (tmp_path / "table.csv").write_text("N,D,P,qid\n1,2,3,4\n")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    status, _, err = run(capsys, *fit_command(unified_tables[0], "--out", make_target(tmp_path)))
    assert_one_line_error(status, err, "--out", *words)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
