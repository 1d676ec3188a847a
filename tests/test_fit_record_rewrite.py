"""A rebuild rewrites a fit file only when a result changes: noise at 1e-10 and a new optimizer message leave it."""

import copy
import json

import pytest

from qid.fitting.record import FitResult

FIT = {"law": "ouyang_per_bit", "params": {"k": 0.0123456789, "alpha": 0.234567891, "beta": 1.3456789012},
       "stderr": {"k": 0.001, "alpha": 0.05, "beta": 0.1}, "intervals": {"beta": [1.2, 1.5]}, "objective": 12.5,
       "n_points": 20, "n_free": 3, "converged": True, "message": "`ftol` termination condition is satisfied.",
       "bootstrap": {"samples": {"beta": [1.31, 1.35, 1.29]}, "seed": 0}, "provenance": {"created": "then"},
       "starts": {"best_start": {"beta": 1.0}, "n_grid": 300}}


def perturbed(content: dict, factor: float) -> dict:
    changed = copy.deepcopy(content)
    changed["params"] = {name: value * factor for name, value in content["params"].items()}
    changed["bootstrap"]["samples"]["beta"] = [value * factor for value in content["bootstrap"]["samples"]["beta"]]
    return changed


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "fit.json"
    FitResult.from_dict(FIT).save(path)
    return path


def test_a_fit_perturbed_at_1e_10_leaves_the_file_untouched(saved):
    before, stamp = saved.read_bytes(), saved.stat().st_mtime_ns
    changed = perturbed(FIT, 1 + 1e-10)
    changed["message"] = "`xtol` termination condition is satisfied."
    changed["provenance"] = {"created": "now"}
    changed["starts"]["best_start"] = {"beta": 0.5}  # which start won is a property of the search
    FitResult.from_dict(changed).save(saved)
    assert saved.read_bytes() == before and saved.stat().st_mtime_ns == stamp


def test_a_real_change_rewrites_the_file(saved):
    FitResult.from_dict(perturbed(FIT, 1 + 1e-4)).save(saved)  # below any printed digit of 3, but a real change
    assert json.loads(saved.read_text())["params"]["beta"] == pytest.approx(FIT["params"]["beta"] * (1 + 1e-4), rel=1e-12)
