"""Kumar et al.'s training-precision laws (issue 24): published constants, limits, and `qid fit` recovering γ_w."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_runner import run
from qid.fitting.fit import synthetic_table
from qid.laws.registry import get_law

# Our scale (N 1e4-1e5, D 1e5-1e6): a loss law with a visible N term, and Kumar's γ's.
SYNTHETIC = {"A": 30.0, "B": 200.0, "E": 2.0, "alpha": 0.3, "beta": 0.35,
             "gamma_w": 2.6745, "gamma_a": 2.2102, "gamma_kv": 0.9578}


def test_published_constants_are_kumars():
    effective = get_law("kumar_effective_parameters").parameter_sets["published"].values
    assert (effective["gamma_w"], effective["gamma_a"], effective["gamma_kv"]) == (2.6745, 2.2102, 0.9578)
    base = get_law("kumar_base").parameter_sets["published"].values
    assert base == {"A": 4.299e3, "B": 1.806e4, "E": 2.7648, "alpha": 0.4965, "beta": 0.4965}
    combined = get_law("kumar_precision").parameter_sets["published_no_robustness"]
    assert combined.status == "derived" and "C_w" in combined.note


def test_effective_parameters_shrink_with_precision_and_vanish_at_16_bits():
    law = get_law("kumar_effective_parameters")
    params = law.parameter_sets["published"].values
    base = get_law("kumar_base")(get_law("kumar_base").parameter_sets["published"].values, N=1e8, D=2e9)
    at = lambda **p: float(law(params, N=1e8, D=2e9, **{"P_w": 16, "P_a": 16, "P_kv": 16, **p}))
    assert at() == pytest.approx(base, abs=2e-3)  # (1 − e^(−16/γ)) ≈ 1
    losses = [at(P_w=bits) for bits in (3, 4, 6, 8, 16)]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert at(P_w=3) > at(P_a=3) > at(P_kv=3)  # γ_w > γ_a > γ_kv: at 3 bits the weights lose the most


def test_post_training_quantization_at_or_above_the_training_precision_costs_nothing():
    law = get_law("kumar_precision")
    params = law.parameter_sets["published_no_robustness"].values
    trained = get_law("kumar_effective_parameters")
    no_ptq = float(law(params, N=1e8, D=2e10, P_w=8, P_post=8))
    assert no_ptq == pytest.approx(float(law(params, N=1e8, D=2e10, P_w=8, P_post=16)))
    assert float(law(params, N=1e8, D=2e10, P_w=8, P_post=4)) > no_ptq
    robust = dict(params, C_w=0.2)  # a finite C_w: a model trained at 6 bits loses less to 4-bit PTQ than one at 16
    delta = lambda p, P_w: float(law(p, N=1e8, D=2e10, P_w=P_w, P_post=4) - law(p, N=1e8, D=2e10, P_w=P_w, P_post=P_w))
    assert delta(robust, 6) < delta(robust, 16)
    # with P_post = 16 the combined law is the effective-parameter law with activations and KV cache at full precision
    full = dict(trained.parameter_sets["published"].values, gamma_a=1e-3 + 0.05, gamma_kv=0.05)
    assert float(law(params, N=1e8, D=2e10, P_w=5, P_post=16)) == pytest.approx(
        float(trained(full, N=1e8, D=2e10, P_w=5, P_a=16, P_kv=16)), rel=1e-9)


def test_qid_fit_recovers_gamma_w_from_synthetic_data(capsys, tmp_path):
    law = get_law("kumar_effective_parameters")
    design = {"N": [1.3e4, 2.9e4, 5.1e4, 1.1e5], "D": [1e5, 4e5, 1.6e6], "P_w": [3, 4, 5, 6, 8, 16],
              "P_a": [16], "P_kv": [16]}
    table = synthetic_table(law, SYNTHETIC, design, noise=0.002, seed=4)
    path = tmp_path / "grid.csv"
    table.to_csv(path, index=False)
    status, out, err = run(capsys, "fit", "--law", "kumar_effective_parameters", "--data", path,
                           "--fix", "gamma_a=2.2102", "--fix", "gamma_kv=0.9578", "--starts", 24, "--seed", 1, "--json")
    assert status == 0, err
    fit = json.loads(out)
    gamma, stderr = fit["params"]["gamma_w"], fit["stderr"]["gamma_w"]
    assert gamma == pytest.approx(SYNTHETIC["gamma_w"], rel=0.05)
    assert abs(gamma - SYNTHETIC["gamma_w"]) < 3 * stderr
