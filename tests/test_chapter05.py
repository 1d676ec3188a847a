"""Chapter 05 end to end on the synthetic suite table (known truth): every row kept, exponents recovered within
their intervals, the lineage cross-validation and hold-out computed, our laws never projected to Pythia scale, and
no fit file written."""

from pathlib import Path

import nbformat
import pytest

from qid.chapters.runner import execute_chapter
from qid.chapters.findings import glued_values
from qid.common.paths import REPO_ROOT
from qid.suite.synthetic import SYNTHETIC_TRUTH

CHAPTER = REPO_ROOT / "notebooks" / "05_fits_on_our_data.py"


@pytest.mark.slow
def test_chapter_05_on_the_synthetic_table(tmp_path):
    fits_before = sorted(path.stat().st_mtime for path in (REPO_ROOT / "data" / "fits").glob("*.json"))
    execute_chapter(CHAPTER, tmp_path, {"QID_TABLE": "synthetic", "BOOTSTRAP_SAMPLES": 30})
    values = glued_values(nbformat.read(tmp_path / f"{CHAPTER.stem}.ipynb", as_version=4))
    assert values["fit_n_points"] > 200 and values["fit_n_sizes"] == 4
    assert values["fit_rows_below_2se"] > 0  # kept, not dropped
    for name in ("alpha", "beta", "gamma"):
        assert values[f"unified_{name}_low"] <= SYNTHETIC_TRUTH[name] <= values[f"unified_{name}_high"], name
    assert values["alpha_slope_low"] <= SYNTHETIC_TRUTH["alpha"] <= values["alpha_slope_high"]
    laws = ("Ouyang unified", "Kumar δ_PTQ", "per-bit (one law per P)", "curved unified (this book)")
    assert values["best_law_aicc"] in laws and values["best_law_cv"] in laws  # ranked by lineage cross-validation
    assert set(values["holdout_rms_z"]) == {*laws, "naive (nearest kept row)"}  # every law's miss is named
    assert values["alpha_determined"] == (values["alpha_slope_low"] > 0)
    assert values["beta_estimator_min"] <= values["unified_beta"] <= values["beta_estimator_max"]
    assert values["projections_of_our_laws"] == 0  # our laws are not carried to Pythia scale
    assert len(values["seed_calibration_rms_z"]) >= 2
    fits_after = sorted(path.stat().st_mtime for path in (REPO_ROOT / "data" / "fits").glob("*.json"))
    assert fits_after == fits_before  # a synthetic run never writes data/fits
    assert Path(tmp_path / f"{CHAPTER.stem}.ipynb").is_file()
