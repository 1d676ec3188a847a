"""The landing page's findings: built from glued chapter values (placeholders where missing), the exponent
overview from the committed fits, and the one scale-gap statement."""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest

from qid.chapters.findings import STATEMENTS, chapter_values, exponent_rows, statements, write_findings
from qid.common.paths import FITS_DIR, REPO_ROOT
from qid.laws.reference import PYTHIA_LARGEST_N, scale_gap, scale_gap_statement

GLUED = {
    "01_published_laws": {"per_bit_cells_within": 48, "per_bit_max_error": 0.012, "unified_max_error_3bit": 0.61,
                          "unified_max_error_4bit": 0.83},
    "05_fits_on_our_data": {"fit_n_points": 33, "unified_alpha": 0.3, "unified_alpha_low": 0.14,
                            "unified_alpha_high": 0.5, "unified_beta": 0.9, "unified_beta_low": 0.72,
                            "unified_beta_high": 1.1, "unified_gamma": 3.4, "unified_gamma_low": 2.9,
                            "unified_gamma_high": 4.2, "best_law_cv": "Ouyang unified", "best_law_cv_close": True,
                            "alpha_slope": 0.15, "alpha_slope_low": -0.4, "alpha_slope_high": 0.7,
                            "alpha_determined": False, "beta_local_slope_first": 1.8, "beta_local_slope_first_dn": 20,
                            "beta_local_slope_last": 0.9, "beta_local_slope_last_dn": 226,
                            "beta_local_slope_first_sizes": 1, "beta_local_slope_last_sizes": 2, "beta_estimator_min": 0.99,
                            "beta_estimator_max": 1.89, "holdout_naive_beats_every_law": True,
                            "holdout_rms_z": {"naive (nearest kept row)": 2.7, "Ouyang unified": 4.5, "Kumar δ_PTQ": 4.6}},
    "06_learning_rate_schedules": {"luo_published_metrics_match": True, "schedule_families": 4,
                                   "schedule_matched_tokens": 0.0048, "schedule_matched_tokens_interval": [0.0019, 0.0078],
                                   "schedule_matched_loss": -0.0146, "schedule_matched_loss_interval": [-0.0295, 0.0003],
                                   "schedule_token_gap": 1.37, "schedule_token_gap_interval": [1.15, 1.64],
                                   "schedule_verdict": "At the same 16-bit loss the interval contains zero."},
}


def test_statements_use_glued_numbers_and_name_the_chapter_to_run_where_missing():
    rows = {title: (chapter, text) for title, chapter, text in statements(GLUED)}
    assert "48 of 48 cells" in rows["Table 1"][1] and "83%" in rows["Table 1"][1]
    exponents = rows["Our exponents"][1]
    assert "whole interval is above zero" in exponents and "leave-one-lineage-out" in exponents
    assert "--only 02_measure_qid" in rows["Measuring QiD"][1] and "not executed" in rows["Measuring QiD"][1]
    partial = {"05_fits_on_our_data": {k: v for k, v in GLUED["05_fits_on_our_data"].items() if k != "unified_gamma_high"}}
    text = dict((title, text) for title, _, text in statements(partial))["Our exponents"]
    assert "does not glue `unified_gamma_high`" in text
    assert len(statements({})) == len(STATEMENTS)


def test_findings_are_no_stronger_than_their_intervals():
    rows = {title: text for title, _, text in statements(GLUED)}
    exponents, schedules = rows["Our exponents"], rows["Schedules"]
    assert "α = 0.15 [-0.4, 0.7]" in exponents and "α is not determined" in exponents  # the size-level interval
    assert "falls from 1.80 (D/N ≈ 20, 1 size(s)) to 0.90 (D/N ≈ 226, 2 size(s))" in exponents and "from 0.99 to 1.89" in exponents
    assert "not decisively" in exponents and "4.5–4.6 standard errors" in exponents and "naive" in exponents
    assert "[-0.0295, 0.0003]" in schedules and "1.37×" in schedules and "interval contains zero" in schedules
    determined = {**GLUED["05_fits_on_our_data"], "alpha_slope_low": 0.1, "alpha_determined": True}
    assert "not determined" not in dict((t, x) for t, _, x in statements({"05_fits_on_our_data": determined}))["Our exponents"]


def test_beta_interval_reaching_zero_is_said_plainly():
    values = {"05_fits_on_our_data": {**GLUED["05_fits_on_our_data"], "unified_beta_low": -0.1}}
    text = dict((title, text) for title, _, text in statements(values))["Our exponents"]
    assert "cannot tell" in text


def test_glued_values_are_read_from_executed_chapters_and_placeholders_skipped(tmp_path):
    from myst_nb import glue  # noqa: F401  (the mime layout below is what glue writes)

    notebook = nbformat.v4.new_notebook()
    output = nbformat.v4.new_output("display_data", data={"application/papermill.record/text/plain": "48"},
                                    metadata={"scrapbook": {"name": "per_bit_cells_within",
                                                            "mime_prefix": "application/papermill.record/"}})
    notebook.cells.append(nbformat.v4.new_code_cell("glue(...)", outputs=[output]))
    nbformat.write(notebook, tmp_path / "01_published_laws.ipynb")
    placeholder = nbformat.v4.new_notebook(metadata={"qid_placeholder": True})
    nbformat.write(placeholder, tmp_path / "02_measure_qid.ipynb")
    assert chapter_values(tmp_path) == {"01_published_laws": {"per_bit_cells_within": 48}}


def test_exponent_overview_reads_published_table1_and_our_fits(tmp_path):
    rows = exponent_rows(FITS_DIR)
    groups = {row["group"] for row in rows}
    assert {"published", "table1"} <= groups
    published = {row["exponent"]: row["estimate"] for row in rows if row["group"] == "published"}
    assert set(published) == {"alpha", "beta", "gamma"}
    for row in rows:
        if row["group"] != "published":
            assert row["low"] <= row["estimate"] <= row["high"], row
    page = write_findings(REPO_ROOT, tmp_path)
    text = page.read_text()
    assert "```{figure} " in text and "Not computed yet" in text  # nothing executed in tmp_path
    from PIL import Image

    assert Image.open(tmp_path / "findings_exponents.png").width >= 600


def test_scale_gap_is_computed_from_the_suite_table():
    table = pd.DataFrame({"N": [1e5, 2e6], "tokens": [1e6, 6e6]})
    gap = scale_gap(table)
    assert gap["N_factor"] == pytest.approx(PYTHIA_LARGEST_N / 2e6)
    assert gap["D_factor"] == pytest.approx(143_000 * 2_097_152 / 6e6)
    assert f"{PYTHIA_LARGEST_N / 2e6:,.0f}×" in scale_gap_statement(table)
    assert "(2,000,000 non-embedding parameters)" in scale_gap_statement(table)  # in full, not "2.0 million"
    assert scale_gap()["N_factor"] > 100  # the committed suite


# --- the answer block (qid.chapters.answer) -------------------------------------------------------------------

ANSWER = {"05_fits_on_our_data": {
    "fit_n_points": 352, "fit_n_sizes": 4, "unified_beta": 0.4123, "unified_beta_low": 0.3012, "unified_beta_high": 0.5234,
    "unified_gamma": 3.1, "unified_gamma_low": 2.5, "unified_gamma_high": 3.9, "alpha_slope": 0.21,
    "alpha_slope_low": -0.45, "alpha_slope_high": 0.87, "best_law_holdout": "Ouyang unified",
    "holdout_best_rms_se": 3.4, "unified_residual_largest_d_se": 0.8, "scale_gap_N_factor": 79957.0}}


def answer_text(values) -> str:
    from qid.chapters.answer import answer_lines

    return "\n".join(answer_lines(values))


def test_answer_says_yes_only_when_the_whole_beta_interval_is_above_zero():
    text = answer_text(ANSWER)
    assert "**Yes, at our scale" in text and "β = 0.412 [0.301, 0.523]" in text
    assert "352 QiD measurements" in text and "79,957×" in text
    # α's size-level interval reaches zero: no claim about model size, and the published α lies inside it
    assert "do not say whether larger models lose less" in text and "against the published 0.2261 (inside" in text
    assert "γ = 3.10 [2.50, 3.90] against the published 5.497 (outside" in text
    assert "not reliable" in text  # a hold-out miss of 3.4 SE is said to be beyond the noise
    for low, verdict in ((-0.1, "**Not resolved at our scale"), (0.01, "**Yes")):
        values = {"05_fits_on_our_data": {**ANSWER["05_fits_on_our_data"], "unified_beta_low": low}}
        assert verdict in answer_text(values)
    negative = {"05_fits_on_our_data": {**ANSWER["05_fits_on_our_data"], "unified_beta": -0.4,
                                         "unified_beta_low": -0.6, "unified_beta_high": -0.2}}
    assert "**No, at our scale" in answer_text(negative) and "Yes" not in answer_text(negative)


def test_answer_shows_the_placeholder_for_each_value_not_glued():
    partial = {"05_fits_on_our_data": {k: v for k, v in ANSWER["05_fits_on_our_data"].items()
                                       if k != "holdout_best_rms_se"}}
    text = answer_text(partial)
    assert "does not glue `holdout_best_rms_se` yet" in text and "**Yes, at our scale" in text
    assert answer_text({}).count("not executed in this build") == 5


def test_answer_opens_the_findings_page(tmp_path):
    from qid.chapters.findings import findings_markdown

    page = findings_markdown(ANSWER, [], None)
    assert page.index("## The answer, and how far to trust it") < page.index("## What the book found")


def test_formats_statement_reports_the_held_out_check_only_when_glued():
    formats = {"formats_preset": "cpu", "formats_checkpoints": 50, "formats_min_rung": "20",
               "formats_equal_storage_bits": "4.52", "formats_pooled_best": "INT4 GPTQ per channel",
               "formats_pooled_runs": 8, "formats_pooled_runner_up": "NVFP4 GPTQ", "formats_pooled_excess": 0.00116,
               "formats_pooled_excess_interval": [0.00009, 0.00223], "formats_pooled_separated": True}

    def text(values):
        return dict((title, text) for title, _, text in statements({"08_float_formats": values}))["Floating-point formats"]

    assert "held-out" not in text(formats) and "resolved" in text(formats)
    failing = text({**formats, "formats_holdout_rms_z_range": [1.18, 3.17]})
    assert "RMS z of 1.2–3.2" in failing and "not laws to project with" in failing
    passing = text({**formats, "formats_holdout_rms_z_range": [0.8, 1.1]})
    assert "as calibrated laws should" in passing and "not laws" not in passing
