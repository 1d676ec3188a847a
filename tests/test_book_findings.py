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
                            "unified_gamma_high": 4.2, "best_law_aicc": "unified"},
}


def test_statements_use_glued_numbers_and_name_the_chapter_to_run_where_missing():
    rows = {title: (chapter, text) for title, chapter, text in statements(GLUED)}
    assert "48 of 48 cells" in rows["Table 1"][1] and "83%" in rows["Table 1"][1]
    assert "α = 0.3 [0.14, 0.5]" in rows["Our exponents"][1]
    assert "whole interval is above zero" in rows["Our exponents"][1] and "By AICc" in rows["Our exponents"][1]
    assert "--only 02_measure_qid" in rows["Measuring QiD"][1] and "not executed" in rows["Measuring QiD"][1]
    partial = {"05_fits_on_our_data": {k: v for k, v in GLUED["05_fits_on_our_data"].items() if k != "unified_gamma_high"}}
    text = dict((title, text) for title, _, text in statements(partial))["Our exponents"]
    assert "does not glue `unified_gamma_high`" in text
    assert len(statements({})) == len(STATEMENTS)


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
