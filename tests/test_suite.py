"""The suite: checkpoint spacing, the three designs' plans, sharding, a tiny end-to-end run, committed tables."""

import numpy as np
import pytest

from qid import suite
from qid import train as training


def test_checkpoint_schedule_is_log_spaced_then_regular():
    steps = suite.checkpoint_schedule(977, first=16, regular_parts=4)
    assert steps == [31, 61, 122, 244, 488, 733, 977]
    assert suite.checkpoint_schedule(10, first=16) == [2, 5, 8, 10]  # no halvings below `first`


def test_cpu_preset_plan_has_three_designs_and_four_sizes_over_one_and_a_half_decades():
    from qid.models import mini_shape

    runs = suite.plan_runs("cpu")
    assert {run.design for run in runs} == set(suite.DESIGNS)
    sizes = {run.size for run in runs if run.design == "cosine"}
    assert len(sizes) >= 4
    n = [mini_shape(size).non_embedding_parameters for size in sizes]
    assert np.log10(max(n) / min(n)) >= 1.5
    for run in runs:
        run.config.validate()
        if run.design == "wsd" and run.config.schedule == "wsd":
            # a decay branch starts from a checkpoint the constant run saves, with its optimizer state
            stable = next(r for r in runs if r.name == run.depends_on)
            point = int(run.config.init_from.rsplit("-", 1)[1])
            assert point in stable.config.checkpoint_steps and stable.config.keep_training_state == "all"
            assert run.config.steps - run.config.decay_steps == point
        if run.design == "annealed":
            cosine = next(r for r in runs if r.design == "cosine" and r.size == run.size)
            assert run.config.steps in cosine.config.checkpoint_steps  # same token counts, two designs


def test_shards_partition_the_runs_and_keep_groups_together():
    runs = suite.plan_runs("cpu")
    shards = [suite.shard_runs(runs, (i, 3)) for i in (1, 2, 3)]
    names = [run.name + run.design for shard in shards for run in shard]
    assert sorted(names) == sorted(run.name + run.design for run in runs)
    for shard in shards:
        groups = {run.group for run in shard}
        for other in shards:
            if other is not shard:
                assert not groups & {run.group for run in other}
        for position, run in enumerate(shard):  # a branch comes after the run it branches from
            if run.depends_on:
                assert run.depends_on in [r.name for r in shard[:position]]


def test_unknown_preset_and_design_are_named():
    with pytest.raises(ValueError, match="preset"):
        suite.get_preset("huge")
    with pytest.raises(ValueError, match="design"):
        suite.plan_runs("tiny", designs=("linear",))


def test_tiny_wsd_suite_end_to_end(tmp_path):
    import dataclasses

    # the tiny preset, shortened: a 24-step constant run and decay branches to 15 and 30 steps
    preset = dataclasses.replace(suite.get_preset("tiny"), name="test", tokens={"0.1m": 7_680, "0.3m": 7_680},
                                 warmup_steps=2, eval_sequences=2)
    finals = suite.train_suite(preset, tmp_path, designs=("wsd",), progress=False, log=lambda message: None)
    assert len(finals) == 3  # the constant run and two decay branches
    table = suite.collect_checkpoints("test", tmp_path)
    assert set(table["phase"]) == {"stable", "decayed"}
    decayed = table[table["phase"] == "decayed"]
    assert np.allclose(decayed["lr"], 0.1 * 3e-3)
    stable = table[table["phase"] == "stable"]
    assert np.allclose(stable["lr"], 3e-3)
    assert (table["tokens"] == table["step"] * 4 * 64).all()
    # a finished suite is not retrained
    again = suite.train_suite(preset, tmp_path, designs=("wsd",), progress=False, log=lambda message: None)
    assert again == finals
    logs = suite.collect_train_logs("test", tmp_path)
    assert {"design", "run", "size", "N", "step", "tokens", "lr", "train_loss"} <= set(logs.columns)


def test_committed_cpu_tables_load_and_cover_the_suite():
    assert (suite.SUITE_DATA_DIR / "cpu_qid.csv").is_file(), "the CPU suite's QiD table must be committed"
    checkpoints = suite.load_suite_table("checkpoints", "cpu")
    qid = suite.load_suite_table("qid", "cpu")
    planned = {run.design for run in suite.plan_runs("cpu")}
    assert set(checkpoints["design"]) == planned
    assert len(qid) == len(checkpoints) * 2 * 4  # every checkpoint × RTN, GPTQ × 2, 3, 4, 8 bits
    assert set(qid["bits"]) == {2, 3, 4, 8} and set(qid["method"]) == {"rtn", "gptq"}
    assert (qid["qid_se"] >= 0).all()


@pytest.mark.parametrize("name", sorted(suite.PRESETS))
def test_every_preset_plans_valid_runs(name):
    runs = suite.plan_runs(name)
    assert runs
    for run in runs:
        run.config.validate()
