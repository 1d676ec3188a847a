"""The committed CPU suite has the design issue 9 asks for: checked on the committed tables, not on the plan."""

import numpy as np
import pytest

from qid.suite import plan as suite, tables as suite_tables

from qid.chapters import suite_analysis


@pytest.fixture(scope="module")
def tables():
    assert (suite.SUITE_DATA_DIR / "cpu_qid.csv").is_file(), "the CPU suite's QiD table must be committed"
    return {kind: suite_tables.load_suite_table(kind, "cpu")
            for kind in ("checkpoints", "qid", "baselines", "lr_sweep", "full_split")}


def test_sizes_span_a_decade_and_share_the_ladder(tables):
    qid = tables["qid"]
    n = qid.groupby("size")["N"].first()
    assert len(n) >= 4 and np.log10(n.max() / n.min()) >= 1.0
    rungs = qid[qid["design"] == "cosine"].groupby("size")["rung"].apply(lambda r: sorted(set(r.dropna())))
    assert all(len(values) >= 5 for values in rungs)
    common = set.intersection(*(set(values) for values in rungs))
    assert len(common) >= 5  # N crossed with D/N: every size on the same first five rungs
    smallest_two = n.sort_values().index[:2]
    assert all(max(rungs[size]) >= 300 for size in smallest_two)


def test_both_designs_two_training_seeds_and_three_calibration_seeds(tables):
    qid = tables["qid"]
    assert {"cosine", "wsd"} <= set(qid["design"])
    assert {"intermediate", "final", "stable", "decayed"} <= set(qid["phase"])
    seeds = qid[qid["design"] == "cosine"].groupby("size")["train_seed"].nunique()
    assert (seeds >= 2).all()
    calibrated = qid[qid["method"].isin(["gptq", "awq"])]
    per_cell = calibrated.groupby(["size", "bits", "method"])["calib_seed"].nunique()
    assert (per_cell >= 3).all()  # every size and bit width has checkpoints with three calibration seeds
    assert {"rtn", "gptq", "awq"} <= set(qid["method"]) and {2, 3, 4, 8} <= set(qid["bits"])


def test_every_rung_of_each_design_is_measured_and_epochs_stay_under_four(tables):
    checkpoints, qid = tables["checkpoints"], tables["qid"]
    assert checkpoints["epochs"].max() <= 4
    on_ladder = checkpoints[checkpoints["rung"].notna()]
    measured = set(zip(qid["run"], qid["step"]))
    assert set(zip(on_ladder["run"], on_ladder["step"])) <= measured


def test_kl_top1_and_settings_are_in_every_row(tables):
    qid = tables["qid"]
    for column in ("kl", "kl_se", "top1_agree", "calib_seed", "batch_size", "threads", "train_seed", "loss_16"):
        assert column in qid.columns
    assert qid["kl"].notna().all() and qid["top1_agree"].between(0, 1).all()
    assert qid["batch_size"].nunique() == 1 and qid["threads"].nunique() == 1  # fixed, recorded


def test_trained_regime_beats_the_bigram_and_orders_loss_by_n(tables):
    qid, baselines = tables["qid"], tables["baselines"]
    bigram = suite_analysis.baseline(baselines, "bigram")
    assert (qid["beats_bigram"] == (qid["loss_16"] < bigram)).all()
    # every size reaches the trained regime on its ladder
    assert qid.groupby("size")["beats_bigram"].any().all()
    ordering = suite_analysis.loss_ordering(qid, min_rung=20)
    assert len(ordering) >= 3 and ordering["ordered_by_N"].all()


def test_two_bit_gptq_is_significant_on_most_trained_checkpoints(tables):
    significant, total = suite_analysis.significant_share(tables["qid"], "gptq", 2, min_rung=20)
    assert total > 0 and significant / total >= 0.8


def test_window_sample_agrees_with_the_whole_split(tables):
    full = tables["full_split"]
    assert len(full) >= 8
    assert (full["difference_in_sample_se"].abs() <= 3).all()
