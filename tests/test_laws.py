"""The law registry and projections: published values, inputs, errors."""

import json
import math

import numpy as np
import pytest

from qid.laws.registry import LAWS, Law, ParameterSet, get_law, load_fit_parameters, register_law, resolve_parameters
from qid.laws.projection import tokens_to_reach_qid, uniform_guess_loss, worse_than_uniform
from qid.laws.reference import load_ouyang_table1
from qid.common.csvtables import DataError


def published(name):
    return get_law(name).parameter_sets["published"].values


def test_registry_holds_the_issue_laws_with_their_parameter_names():
    expected = {
        "ouyang_unified": ("k", "alpha", "beta", "gamma"),
        "ouyang_per_bit": ("k", "alpha", "beta"),
        "kumar_ptq": ("C_T", "gamma_D", "gamma_N", "gamma_post"),
        "chinchilla": ("A", "B", "E", "alpha", "beta"),
    }
    for name, parameters in expected.items():
        assert get_law(name).parameters == parameters
    assert "pythia_loss16" in LAWS
    assert get_law("ouyang_unified").variables == ("N", "D", "P")
    assert get_law("ouyang_per_bit").variables == ("N", "D")


def test_unified_law_matches_the_issue_examples():
    law = get_law("ouyang_unified")
    assert law(published("ouyang_unified"), N=7e10, D=1e14, P=4) == pytest.approx(0.661, abs=5e-4)
    assert tokens_to_reach_qid(law, published("ouyang_unified"), 0.2, N=1e9, P=2) == pytest.approx(1.16e9, rel=5e-3)


def test_unified_law_values_at_100T_tokens_match_the_derived_reference():
    # papers.md [derived]: 7B 50.3/5.41/1.11, 405B 20.1/2.16/0.45 at 2/3/4 bits and 1e14 tokens. Those are
    # hand-rounded; the 405B 4-bit value computes to 0.4447, hence 1.5% rather than half a printed digit.
    law, params = get_law("ouyang_unified"), published("ouyang_unified")
    for size, values in {7e9: (50.3, 5.41, 1.11), 4.05e11: (20.1, 2.16, 0.45)}.items():
        for bits, value in zip((2, 3, 4), values):
            assert law(params, N=size, D=1e14, P=bits) == pytest.approx(value, rel=0.015)


def test_pythia_loss16_matches_the_derived_example():
    assert get_law("pythia_loss16")(published("pythia_loss16"), N=1e9, D=3e11) == pytest.approx(3.04, abs=0.01)


def test_per_bit_set_derived_from_unified_equals_unified_at_that_bit_width():
    unified, per_bit = get_law("ouyang_unified"), get_law("ouyang_per_bit")
    for bits in (2, 3, 4):
        derived = per_bit.parameter_sets[f"unified_P{bits}"]
        assert derived.status == "derived"
        assert per_bit(derived.values, N=3e9, D=2e12) == pytest.approx(unified(published("ouyang_unified"), N=3e9, D=2e12, P=bits))


def test_tokens_to_reach_qid_inverts_the_law_and_handles_the_edges():
    law, params = get_law("kumar_ptq"), published("kumar_ptq")
    tokens = tokens_to_reach_qid(law, params, 0.05, N=1e8, P=4)
    assert law(params, N=1e8, D=tokens, P=4) == pytest.approx(0.05, rel=1e-9)
    assert tokens_to_reach_qid(law, params, 1e9, N=1e8, P=4) == math.inf
    with pytest.raises(ValueError, match="qid must be > 0"):
        tokens_to_reach_qid(law, params, 0.0, N=1e8, P=4)
    with pytest.raises(ValueError, match="predicts loss"):
        tokens_to_reach_qid(get_law("chinchilla"), published("chinchilla"), 0.1, N=1e8)


def test_missing_variable_and_unknown_names_are_clear_errors():
    law = get_law("ouyang_unified")
    with pytest.raises(ValueError, match="needs P"):
        law(published("ouyang_unified"), N=1e9, D=1e9)
    with pytest.raises(KeyError, match="unknown law 'nope'"):
        get_law("nope")
    with pytest.raises(KeyError, match="known sets: published"):
        resolve_parameters(law, "nonexistent")


def test_register_law_rejects_an_incomplete_parameter_set():
    def my_law(N, a, b):
        """QiD = a * N^-b"""
        return a * N ** -b

    with pytest.raises(ValueError, match="expected"):
        register_law(Law("my_law", my_law, "qid", "a*N^-b", "aN^{-b}", "mine", {"s": ParameterSet({"a": 1.0}, "x")}))
    assert "my_law" not in LAWS


def test_fit_json_parameters_round_trip(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({"law": "ouyang_per_bit", "params": {"k": 1e-4, "alpha": 0.2, "beta": 0.5}}))
    assert resolve_parameters(get_law("ouyang_per_bit"), str(path)) == {"k": 1e-4, "alpha": 0.2, "beta": 0.5}
    with pytest.raises(ValueError, match="not 'ouyang_unified'"):
        load_fit_parameters(path, "ouyang_unified")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_fit_parameters(tmp_path / "bad.json")


def test_uniform_guess_region():
    assert uniform_guess_loss(50_304) == pytest.approx(math.log(50_304))
    assert worse_than_uniform(np.array([3.0, 3.0]), np.array([1.0, 8.0]), 50_304).tolist() == [False, True]


def test_table1_loads_with_law_columns_and_rejects_bad_files(tmp_path):
    table = load_ouyang_table1()
    assert len(table) == 48 and set(table["bits"]) == {2, 3, 4}
    assert table.loc[0, "D"] == pytest.approx(0.0011e12)
    bad = tmp_path / "table.csv"
    bad.write_text("size,n_params_nominal,bits,qid_threshold\n1B,1e9,2,0.2\n")
    with pytest.raises(DataError, match="missing column.*tokens_trillions"):
        load_ouyang_table1(bad)
    bad.write_text("size,n_params_nominal,bits,qid_threshold,tokens_trillions\n1B,1e9,2,0.2,-1\n")
    with pytest.raises(DataError, match="tokens_trillions must be > 0"):
        load_ouyang_table1(bad)


def test_sun_fp_law_and_its_preferred_splits_are_the_papers():
    """Sun et al. 2025: the published constants evaluate term by term, and the split their law prefers at 4, 8 and
    16 bits is E2M1, E4M3, E8M7, the layouts the paper names (papers.md §3)."""
    from qid.laws.fpsplit import preferred_split, split_ranking

    law = get_law("sun_fp_training")
    published = law.parameter_set("published").values
    assert published["delta"] == 3.1926 and published["nu"] == 2.9543 and published["gamma"] == 11334.5197
    N, D, E, M, B = 1e8, 1e10, 2, 1, 32
    p = published
    base = p["n"] / N ** p["alpha"] + p["d"] / D ** p["beta"] + p["epsilon"]
    penalty = D ** p["beta"] / N ** p["alpha"] * math.log2(B) / (p["gamma"] * (E + 0.5) ** p["delta"] * (M + 0.5) ** p["nu"])
    value = law(published, N=N, D=D, exponent_bits=E, mantissa_bits=M, block_size=B)
    assert float(value) == pytest.approx(base + penalty, rel=1e-12) and penalty > 0
    assert float(law(published, N=N, D=D, exponent_bits=E, mantissa_bits=M, block_size=1)) == pytest.approx(base)
    assert [preferred_split(bits) for bits in (4, 8, 16)] == [(2, 1), (4, 3), (8, 7)]
    ranking = split_ranking(4)
    assert list(ranking["format"]) == ["E2M1", "E1M2", "E3M0"] and ranking["relative_penalty"].iloc[0] == 1.0
    assert (ranking["relative_penalty"].diff().dropna() > 0).all()
    with pytest.raises(ValueError, match="total_bits"):
        split_ranking(1)
