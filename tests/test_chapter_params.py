"""Chapter parameters: declared once in qid.chapters.params, coerced from papermill's text, one clear error.

The slow tests execute chapter 02 with papermill's own command line, list parameters passed the `-p` way
(`-p BITS "[2, 8]"` reaches the notebook as the string "[2, 8]").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qid.chapters.runner import chapter_parameters, chapter_sources, run_book
from qid.chapters.params import (
    CHAPTER_PARAMETERS,
    ParameterError,
    apply_chapter_parameters,
    coerce_parameters,
)
from qid.common.paths import REPO_ROOT


def test_papermill_text_is_coerced_to_the_declared_types():
    values = coerce_parameters("02_measure_qid", {
        "BITS": "[3, 4]", "METHODS": "[rtn, gptq]", "GROUP_SIZE": "-1", "EVAL_TOKENS": 2048.0, "CHECKPOINTS": "[]",
    })
    assert values == {"BITS": [3, 4], "METHODS": ["rtn", "gptq"], "GROUP_SIZE": -1, "EVAL_TOKENS": 2048,
                      "CHECKPOINTS": []}
    values = coerce_parameters("04_fitter_validation", {"SCREEN_STARTS": "None", "HUBER_DELTA": "1e-3",
                                                        "CONFIDENCE": "0.9", "CHINCHILLA_CSV": None})
    assert values == {"SCREEN_STARTS": None, "HUBER_DELTA": 0.001, "CONFIDENCE": 0.9, "CHINCHILLA_CSV": None}


@pytest.mark.parametrize("chapter, name, value", [
    ("02_measure_qid", "BITS", "[1, 4]"),          # below 2 bits
    ("02_measure_qid", "BITS", [17]),              # above 16 bits
    ("02_measure_qid", "BITS", []),                # empty list
    ("02_measure_qid", "BITS", "[3.5]"),           # not an integer
    ("02_measure_qid", "METHODS", ["rtn", "foo"]),  # unknown quantizer
    ("02_measure_qid", "GROUP_SIZE", 0),
    ("02_measure_qid", "DEVICE", "tpu"),
    ("02_measure_qid", "TRAIN_STEPS", "many"),
    ("04_fitter_validation", "CONFIDENCE", 1.0),
    ("04_fitter_validation", "BOOTSTRAP_SAMPLES", 1),
    ("04_fitter_validation", "NOISE_SIGMA", True),
])
def test_a_bad_value_raises_one_error_naming_the_parameter(chapter, name, value):
    with pytest.raises(ParameterError, match=rf"^parameter {name} must be "):
        coerce_parameters(chapter, {name: value})


def test_unknown_parameter_is_named():
    with pytest.raises(ParameterError, match="has no parameter.*BITZ"):
        coerce_parameters("02_measure_qid", {"BITZ": [2]})


def test_one_line_call_coerces_the_namespace_in_place_and_checks_joint_rules():
    namespace = {"CHINCHILLA_CSV": None, "DROP_LARGEST_LOSSES": "5", "HUBER_DELTA": 1e-3, "SCREEN_STARTS": None,
                 "BOOTSTRAP_SAMPLES": 200, "HOLDOUT_TOP": 3, "NOISE_SIGMA": 0.1, "COVERAGE_REPETITIONS": 100,
                 "COVERAGE_BOOTSTRAP": 100, "CONFIDENCE": 0.95, "SEED": 0,
                 "SYNTHETIC_DESIGN": {"N": [1e8, 4e8], "D": [1e9], "P": [2, 3]}}
    apply_chapter_parameters("04_fitter_validation", namespace)
    assert namespace["DROP_LARGEST_LOSSES"] == 5
    namespace["SYNTHETIC_DESIGN"] = {"N": [1e8], "D": [1e9]}
    with pytest.raises(ParameterError, match="parameter SYNTHETIC_DESIGN"):
        apply_chapter_parameters("04_fitter_validation", namespace)
    del namespace["SEED"]
    with pytest.raises(ParameterError, match="SEED"):
        apply_chapter_parameters("04_fitter_validation", namespace)


@pytest.mark.parametrize("chapter", sorted(CHAPTER_PARAMETERS))
def test_declaration_matches_the_parameters_cell_and_accepts_its_defaults(chapter):
    import jupytext

    source = REPO_ROOT / "notebooks" / f"{chapter}.py"
    declared = [parameter.name for parameter in CHAPTER_PARAMETERS[chapter]]
    assert declared == chapter_parameters(source), f"{chapter}: declaration and parameters cell differ"
    cell = next(cell for cell in jupytext.read(source).cells if "parameters" in cell.metadata.get("tags", []))
    namespace: dict = {}
    exec(cell.source, namespace)  # the defaults themselves must pass the check
    apply_chapter_parameters(chapter, namespace)
    assert f'apply_chapter_parameters("{chapter}", globals())' in source.read_text()


def test_the_runner_refuses_a_bad_override_before_executing(tmp_path):
    with pytest.raises(ParameterError, match="parameter BITS"):
        run_book(REPO_ROOT, tmp_path, {"02_measure_qid": {"BITS": "[1]"}}, only=["02_measure_qid"])
    assert not list(tmp_path.glob("*.ipynb"))


def _papermill(*arguments: str, output: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "papermill"), str(REPO_ROOT / "notebooks" / "02_measure_qid.ipynb"),
               str(output), "--cwd", str(REPO_ROOT), "-k", "python3", "--no-progress-bar", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_chapter_runs_with_list_parameters_passed_the_papermill_way(tmp_path):
    table = tmp_path / "qid.csv"
    result = _papermill("-p", "METHODS", "[rtn]", "-p", "BITS", "[2, 8]", "-p", "TRAIN_STEPS", "40",
                        "-p", "EVAL_TOKENS", "2048", "-p", "CALIBRATION_SAMPLES", "4",
                        "-p", "WORK_DIR", str(tmp_path / "work"), "-p", "OUTPUT_CSV", str(table),
                        output=tmp_path / "out.ipynb")
    assert result.returncode == 0, result.stderr[-3000:]
    measured = pd.read_csv(table)
    assert set(measured["method"]) == {"rtn"}
    assert sorted(set(measured["bits"])) == [2, 8, 16]


@pytest.mark.slow
def test_a_bad_papermill_parameter_stops_the_chapter_with_its_name(tmp_path):
    result = _papermill("-p", "BITS", "[1, 4]", "-p", "WORK_DIR", str(tmp_path / "work"),
                        "-p", "OUTPUT_CSV", str(tmp_path / "qid.csv"), output=tmp_path / "out.ipynb")
    assert result.returncode != 0
    assert "parameter BITS must be a non-empty list of integers from 2 to 16" in result.stderr + result.stdout
    assert not (tmp_path / "work").exists(), "nothing may run before the parameters are checked"


def test_every_declared_chapter_exists():
    stems = {source.stem for source in chapter_sources()}
    assert set(CHAPTER_PARAMETERS) <= stems


@pytest.mark.slow
def test_suite_chapter_makes_the_tiny_preset_it_is_asked_for(tmp_path):
    """PRESET="tiny" has no committed tables: the chapter trains and measures the tiny suite itself."""
    work = tmp_path / "live"
    run_book(REPO_ROOT, tmp_path / "out", {"03_mini_pythia_suite": {"PRESET": "tiny", "LIVE_DIR": str(work),
                                                                     "LIVE_METHODS": "[]"}},
             only=["03_mini_pythia_suite"])
    assert (work / "tables" / "tiny_qid.csv").is_file()
    assert (tmp_path / "out" / "03_mini_pythia_suite.ipynb").is_file()
