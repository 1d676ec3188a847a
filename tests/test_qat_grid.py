"""The training-precision grid (issue 24): its plan, the committed tables' design and provenance, the collector, and
chapter 07's analyses (compute-optimal precision, matched-loss PTQ comparison)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qid.chapters import precision_analysis as analysis
from qid.common.paths import DATA_DIR
from qid.suite import qat_grid as grid_module
from qid.suite.models import MINI_SHAPES, mini_shape

QAT_DIR = DATA_DIR / "qat"
FAMILY = sorted((name for name in MINI_SHAPES if name.startswith("L4-")), key=lambda n: mini_shape(n).non_embedding_parameters)


def test_the_plan_is_the_issues_design_on_the_smallest_sizes_of_the_fixed_depth_family():
    plan = grid_module.plan()
    assert len({run.name for run in plan}) == len(plan)
    assert list(grid_module.SIZES) == FAMILY[:3] and {mini_shape(s).layers for s in grid_module.SIZES} == {4}
    weights = [run for run in plan if run.part == "weights" and run.seed == 0]
    for size in grid_module.SIZES:
        for rung in grid_module.RUNGS:
            assert {run.weight_bits for run in weights if (run.size, run.rung) == (size, rung)} == {3, 4, 5, 6, 8, 16}
    assert len(grid_module.RUNGS) >= 2
    kv = {(run.activation_bits, run.kv_bits) for run in plan if run.part == "activations_kv"}
    assert kv | {(16, 16)} == {(a, k) for a in (4, 8, 16) for k in (4, 8, 16)}
    second = {(run.rung, run.weight_bits) for run in plan if run.seed == 1}
    assert second == {(rung, bits) for rung in grid_module.RUNGS for bits in grid_module.WEIGHT_BITS}
    assert min(run.steps for run in plan) >= 64  # every run has a schedule, not a handful of steps
    assert grid_module.planned_core_seconds(plan) <= 40 * 60  # the brief's budget: at most 40 core-minutes
    assert [run.phase for run in plan] == sorted(run.phase for run in plan)


def _committed():
    grid = pd.read_csv(QAT_DIR / "grid.csv")
    ptq = pd.read_csv(QAT_DIR / "ptq.csv")
    provenance = json.loads((QAT_DIR / "provenance.json").read_text())
    return grid, ptq, provenance


def test_the_committed_grid_is_the_planned_design_and_says_what_was_not_run():
    grid, ptq, provenance = _committed()
    planned = {run.name: run for run in grid_module.plan()}
    assert set(grid["run"]) <= set(planned) and grid["run"].is_unique
    assert set(grid["run"]) | set(provenance["not_run"]) == set(planned)
    assert not set(grid["run"]) & set(provenance["not_run"])
    assert provenance["planned_runs"] == len(planned) and provenance["measured_runs"] == len(grid)
    assert provenance["design"]["sizes"] == list(grid_module.SIZES)
    assert provenance["design"]["weight_bits"] == list(grid_module.WEIGHT_BITS)
    for _, row in grid.iterrows():
        run = planned[row["run"]]
        assert (row["size"], row["N"], row["rung"], row["seed"]) == (run.size, run.N, run.rung, run.seed)
        assert (row["P_w"], row["P_a"], row["P_kv"], row["tokens"]) == (run.weight_bits, run.activation_bits,
                                                                        run.kv_bits, run.tokens)
        assert 0 < row["loss"] < np.log(1024) + 1 and row["loss_se"] > 0
    # the phases ran in order: every run not run belongs to a phase no earlier than the last one measured ... minus
    # the runs in flight when the grid was collected (one per worker)
    measured_phase = max(planned[name].phase for name in grid["run"])
    early_missing = [name for name in provenance["not_run"] if planned[name].phase < measured_phase]
    assert len(early_missing) <= 2
    # post-training quantization: every weight-part run, GPTQ at 4 and 3 bits, paired with its own loss
    weights = grid[grid["part"] == "weights"]
    assert set(ptq["run"]) == set(weights["run"])
    assert set(zip(ptq["method"], ptq["P_post"])) == {(m, b) for m in grid_module.POST_METHODS for b in grid_module.POST_BITS}
    merged = ptq.merge(weights[["run", "loss"]], on="run", suffixes=("", "_grid"))
    assert np.allclose(merged["loss"], merged["loss_grid"]) and np.allclose(merged["loss_post"] - merged["loss"],
                                                                           merged["delta_ptq"], atol=1e-5)


def test_the_committed_grid_holds_the_issues_whole_design_on_the_committed_corpus():
    grid, _, provenance = _committed()
    assert provenance["not_run"] == []
    weights = grid[(grid["part"] == "weights") & (grid["seed"] == 0)]
    complete = {(size, rung) for (size, rung), cell in weights.groupby(["size", "rung"])
                if set(cell["P_w"]) == set(grid_module.WEIGHT_BITS)}
    # >= 3 sizes x >= 2 budgets x every P_w, a second seed, P_a x P_kv
    assert len(grid_module.SIZES) >= 3 and len(grid_module.RUNGS) >= 2
    assert complete == {(size, rung) for size in grid_module.SIZES for rung in grid_module.RUNGS}
    assert set(grid["seed"]) == set(grid_module.SEEDS) and (grid["part"] == "activations_kv").sum() == 8
    seconds = grid[grid["seed"] == 1]
    assert set(zip(seconds["rung"], seconds["P_w"])) == {(r, b) for r in grid_module.RUNGS for b in grid_module.WEIGHT_BITS}
    # every run was trained on the corpus edition committed in data/corpus_v2 (and its tokenizer)
    from qid.suite.train import corpus_fingerprint

    assert provenance["corpus"] == [corpus_fingerprint(grid_module.CORPUS_DIR)]


def test_collect_writes_the_tables_and_lists_the_runs_not_yet_measured(tmp_path):
    run = grid_module.plan()[0]
    folder = tmp_path / "runs" / run.name
    folder.mkdir(parents=True)
    record = {"size": run.size, "rung": run.rung, "seed": run.seed, "weight_bits": run.weight_bits,
              "activation_bits": run.activation_bits, "kv_bits": run.kv_bits, "run": run.name, "part": run.part,
              "N": run.N, "tokens": run.tokens, "steps": run.steps, "max_lr": 8e-3, "batch_size": 8, "seq_len": 128,
              "train_wall_s": 10.0, "tokens_per_second": 100.0, "corpus": "c", "commit": "abc", "machine": "m",
              "saved_utc": "2026-12-06T00:00:00Z", "loss": 5.0, "loss_se": 0.01, "loss_master": 5.0, "eval_tokens": 1,
              "ptq": [{"method": "gptq", "P_post": 4, "loss_post": 5.1, "delta_ptq": 0.1, "delta_ptq_se": 0.01}]}
    (folder / grid_module.RESULT_FILE).write_text(json.dumps(record))
    provenance = grid_module.collect(tmp_path / "runs", tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "grid.csv")
    assert list(table["run"]) == [run.name] and table["P_w"].iloc[0] == run.weight_bits
    assert len(pd.read_csv(tmp_path / "out" / "ptq.csv")) == 1
    assert provenance["measured_runs"] == 1 and len(provenance["not_run"]) == len(grid_module.plan()) - 1


def test_compute_optimal_precision_of_kumars_constants():
    each = analysis.closed_form_precision([2.6745, 2.2102, 0.9578])
    assert each == pytest.approx(3.47, abs=0.01)
    # the direct search over N (and P) at fixed compute agrees with the closed form when alpha = beta
    params = {"A": 4.299e3, "B": 1.806e4, "E": 2.7648, "alpha": 0.4965, "beta": 0.4965}
    direct = analysis.optimal_training_precision(params, [2.6745, 2.2102, 0.9578], 1e20, np.arange(2, 16.01, 0.05))
    assert direct["P"] == pytest.approx(each, abs=0.06)
    # weights alone: (1 - e^(-P/gamma))/P falls everywhere, so the optimum is the lowest precision scanned
    assert analysis.closed_form_precision([2.6745], np.arange(2, 16, 0.01)) == pytest.approx(2.0)


def test_matched_loss_comparison_finds_a_known_robustness():
    rows = []
    for loss in np.linspace(4.0, 5.0, 6):  # 16-bit runs: delta = 0.5 - 0.1 * loss
        rows.append({"run": f"r{loss}", "size": "s", "N": 1, "tokens": 1, "seed": 0, "P_w": 16, "loss": loss,
                     "method": "gptq", "P_post": 4, "loss_post": loss, "delta_ptq": 0.5 - 0.1 * loss, "delta_ptq_se": 0.01})
    for loss in (4.3, 4.6, 5.5):  # QAT runs 0.02 below the matched value; the last is outside the 16-bit range
        rows.append({"run": f"q{loss}", "size": "s", "N": 1, "tokens": 1, "seed": 0, "P_w": 6, "loss": loss,
                     "method": "gptq", "P_post": 4, "loss_post": loss, "delta_ptq": 0.48 - 0.1 * loss, "delta_ptq_se": 0.01})
    matched = analysis.matched_loss_ptq(pd.DataFrame(rows), "gptq")
    assert np.allclose(matched["difference"], -0.02) and list(matched["in_range"]) == [True, True, False]


def _synthetic_grid(gamma_w: float | None, noise: float = 0.004, seed: int = 0) -> pd.DataFrame:
    """The committed grid's design with losses from Kumar's N_eff law (γ_w given; None: no precision effect)."""
    from qid.laws.registry import get_law

    grid, _, _ = _committed()
    law = get_law(analysis.LAW)
    params = {"A": 30.0, "B": 200.0, "E": 2.0, "alpha": 0.3, "beta": 0.4965, "gamma_w": gamma_w or 1.0,
              "gamma_a": 2.2102, "gamma_kv": 0.9578}
    bits = {name: grid[name].to_numpy(float) for name in ("P_w", "P_a", "P_kv")}
    if gamma_w is None:
        bits = {name: np.full(len(grid), 16.0) for name in bits}
    loss = law(params, N=grid["N"].to_numpy(float), D=grid["tokens"].to_numpy(float), **bits)
    rng = np.random.default_rng(seed)
    return grid.assign(loss=loss + rng.normal(0, noise, len(grid)), loss_se=noise)


@pytest.mark.parametrize("gamma_w", [2.6745, None])
def test_the_profile_region_covers_the_true_gamma_or_stays_open_without_an_effect(gamma_w):
    grid = analysis.load_grid(QAT_DIR / "grid.csv")
    grid = _synthetic_grid(gamma_w).assign(D=grid["D"])
    _, fixed = analysis.fit_precision_law(grid, starts=4)
    values = (0.05, 0.3, 1.0, 1.8, 2.6745, 4.0, 8.0, 20.0, 50.0)
    profile, region = analysis.profile_gamma(grid, fixed, values=values, starts=4)
    assert len(profile) == len(values) and profile["deviance"].min() == 0
    if gamma_w is not None:  # a visible effect: the truth inside, far values outside
        assert region["low"] <= gamma_w <= region["high"]
        assert not region["low_open"] and not region["high_open"] and region["high"] < 20
    else:  # no effect at any P_w: nothing bounds γ_w from below
        assert region["low_open"]
