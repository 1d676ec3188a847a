"""The book's number and table formatter (qid.chapters.formatting): what a reader sees on a page."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from qid.chapters.formatting import (
    MISSING,
    format_cell,
    format_count,
    format_interval,
    format_number,
    format_percent,
    format_se,
    format_size,
    format_value_interval,
    format_value_se,
    page_table,
)


@pytest.mark.parametrize("value, se, expected", [
    (0.0123456, 0.00042, "0.01235"),      # rounded at the SE's second significant digit
    (0.0123456, 0.0042, "0.0123"),
    (1.23456, 0.3, "1.23"),
    (1234.5678, 25, "1,235"),
    (123456.0, 2500, "123,500"),
    (-3e-7, 2e-5, "0.000000"),            # rounds to zero: no sign, never "-0.00000"
    (4.6e-8, 1.2e-9, "4.60 × 10⁻⁸"),      # too many decimals: m × 10ⁿ with the SE's precision
])
def test_number_with_a_standard_error_keeps_the_digits_the_se_supports(value, se, expected):
    assert format_number(value, se=se) == expected


@pytest.mark.parametrize("value, expected", [
    (0.14804153232793235, "0.148"),
    (2.0, "2"),
    (150080, "150,080"),
    (-0.000001, "-1 × 10⁻⁶"),
    (1e14, "1 × 10¹⁴"),
    (1.16e9, "1.16 × 10⁹"),
    (-0.0000004, "-4 × 10⁻⁷"),
    (0.0, "0"),
    (-0.0, "0"),
    (math.nan, MISSING),
    (None, MISSING),
    (math.inf, MISSING),
    (True, "yes"),
])
def test_number_without_a_standard_error_has_three_significant_digits(value, expected):
    assert format_number(value) == expected


def test_no_formatted_number_reads_minus_zero_or_has_twelve_digits():
    for value in (-1e-9, -4e-6, -0.000004, 0.14804153232793235, 1 / 3, 2 / 3 * 1e-5, 123456789.123456):
        for se in (None, 1e-5, 0.01, 3.0):
            text = format_number(value, se=se)
            assert not re.fullmatch(r"-0(\.0*)?", text), (value, se, text)
            assert not re.search(r"\d{12,}", text.replace(",", "")), (value, se, text)


def test_standard_errors_and_intervals():
    assert format_se(0.000423) == "0.00042"
    assert format_value_se(0.0123456, 0.000423) == "0.01235 ± 0.00042"
    assert format_value_se(0.5, 0) == "0.5"
    assert format_interval(0.031234, 0.287123) == "[0.031, 0.287]"
    assert format_interval(-0.00012, 0.00034) == "[-0.00012, 0.00034]"
    assert format_interval(0.2, math.nan) == MISSING
    assert format_value_interval(0.1432, 0.031234, 0.287123) == "0.143 [0.031, 0.287]"
    assert format_cell([0.14804153232793235, 0.2969413523]) == "[0.148, 0.297]"  # a list of two numbers is an interval


@pytest.mark.parametrize("value, expected", [
    (150_080, "150k"), (12_800, "12.8k"), (7e9, "7B"), (7e10, "70B"), (4.05e11, "405B"),
    (1.25e6, "1.25M"), (1e14, "100T"), (512, "512"),
])
def test_sizes_read_as_the_field_writes_them(value, expected):
    assert format_size(value) == expected


def test_counts_and_percentages():
    assert format_count(150_080) == "150,080"
    assert format_count(65536.0) == "65,536"
    assert format_percent(0.953) == "95%"
    assert format_percent(0.0312) == "3.1%"
    assert format_percent(1.0) == "100%"


def test_page_table_has_no_index_no_raw_cells_and_rounds_by_the_se():
    frame = pd.DataFrame({"method": ["rtn", "gptq"], "bits": [2, 8], "qid": [0.14804153232793235, -3e-7],
                          "qid_se": [0.0042, 2e-5], "flag": [True, False], "N": [150_080, 7e9],
                          "ratio": [math.nan, 0.5]}).set_index("method")
    html = page_table(frame, se_columns={"qid": "qid_se"}, formats={"N": format_size}).to_html()
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html)
    assert "rtn" in cells and "gptq" in cells  # the index became a column
    assert "<th" not in re.sub(r"<thead>.*?</thead>", "", html, flags=re.S)  # no index column in the body
    assert {"0.1480", "0.000000", "0.0042", "yes", "no", "150k", "7B", MISSING} <= set(cells), cells
    assert not any(re.search(r"\d{12,}|^-0\.0*$|True|False|nan", cell) for cell in cells), cells


def test_page_table_can_show_value_and_se_in_one_column_and_rename():
    frame = pd.DataFrame({"qid": [0.0123456], "qid_se": [0.000423]})
    html = page_table(frame, se_columns={"qid": "qid_se"}, drop_se_columns=True, rename={"qid": "QiD ± SE"}).to_html()
    assert "0.01235 ± 0.00042" in html and "QiD ± SE" in html and "qid_se" not in html


def test_page_table_drops_an_unnamed_index_after_sorting():
    frame = pd.DataFrame({"bits": [8, 2], "qid": [0.1, 0.2]}).sort_values("bits")
    html = page_table(frame).to_html()
    assert ">index<" not in html and re.findall(r"<td[^>]*>(.*?)</td>", html)[:2] == ["2", "0.2"]
