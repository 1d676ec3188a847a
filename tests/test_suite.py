"""The suite: the ladder design, the learning-rate sweep, sharding, a tiny end-to-end run with measurement."""

import dataclasses
import json
import os

import numpy as np
import pytest

from qid.suite import measurement as suite_measure, pipeline as suite_pipeline, plan as suite, tables as suite_tables
from qid.suite import run as suite_run
from qid.suite import train as training

LRS = {"13k": 8e-3, "25k": 8e-3, "57k": 8e-3, "150k": 8e-3}


def test_cpu_preset_crosses_n_with_a_shared_ladder():
    preset = suite.get_preset("cpu")
    n = {size: suite.size_parameters(size) for size in preset.sizes}
    assert len(n) >= 4 and np.log10(max(n.values()) / min(n.values())) >= 1.0
    smallest_two = sorted(n, key=n.get)[:2]
    assert all(max(preset.rungs(size)) >= 300 for size in smallest_two)
    assert all(len(preset.rungs(size)) >= 5 for size in preset.sizes)
    for size in preset.sizes:  # every size shares the ladder's first rungs: N and D/N are crossed
        assert preset.rungs(size) == preset.ladder[: len(preset.rungs(size))]
    assert len(preset.cosine_seeds) >= 2 and len(preset.qid_calibration_seeds) >= 3


def test_plan_has_a_checkpoint_at_every_rung_and_a_decay_branch_ending_at_each():
    preset = suite.get_preset("cpu")
    runs = suite.plan_runs(preset, learning_rates=LRS)
    for size in preset.sizes:
        rungs = suite.rung_steps(preset, size)
        cosine = [r for r in runs if r.design == "cosine" and r.size == size]
        assert {r.config.seed for r in cosine} == set(preset.cosine_seeds)
        for run in cosine:
            assert set(rungs.values()) == set(run.config.checkpoint_steps) and run.config.steps == max(rungs.values())
        stable = next(r for r in runs if r.design == "wsd" and r.size == size and r.phase == "stable")
        assert set(rungs.values()) <= set(stable.config.checkpoint_steps)
        branches = [r for r in runs if r.depends_on == stable.name]
        assert {r.config.steps for r in branches} == set(rungs.values())
        for run in branches:
            point = int(run.config.init_from.rsplit("-", 1)[1])
            assert point in stable.config.checkpoint_steps and stable.config.keep_training_state == "all"
            assert run.config.steps - run.config.decay_steps == point
            assert run.config.decay_steps == pytest.approx(preset.wsd_decay_fraction * run.config.steps, abs=1)
        for run in runs:
            run.config.validate()


def test_designs_wait_for_the_learning_rate_sweep(tmp_path):
    with pytest.raises(ValueError, match="sweep .* not finished"):
        suite.plan_runs("cpu", tmp_path)
    sweep = suite.plan_lr_sweep("cpu", tmp_path)
    preset = suite.get_preset("cpu")
    assert len(sweep) == len(preset.sizes) * len(preset.lr_candidates)
    for run in sweep:
        assert run.config.steps * run.config.tokens_per_step >= preset.lr_sweep_min_tokens


def test_shards_partition_the_runs_and_keep_groups_together():
    runs = suite.plan_runs("cpu", learning_rates=LRS)
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
    loads = [sum(suite.run_cost(r) for r in shard) for shard in shards]
    assert max(loads) < 1.5 * min(loads)


def test_unknown_preset_design_and_size_are_named():
    with pytest.raises(ValueError, match="preset"):
        suite.get_preset("huge")
    with pytest.raises(ValueError, match="design"):
        suite.plan_runs("tiny", designs=("linear",))
    with pytest.raises(ValueError, match="99m"):
        suite.plan_runs("tiny", sizes=("99m",))


@pytest.mark.parametrize("name", sorted(suite.PRESETS))
def test_every_preset_plans_valid_runs_and_a_budget(name):
    preset = suite.get_preset(name)
    lrs = {size: preset.max_lr.get(size, preset.lr_candidates[0]) for size in preset.sizes}
    runs = suite.plan_runs(name, learning_rates=lrs)
    assert runs
    for run in runs:
        run.config.validate()
    budget = suite.budget_table(name)
    assert (budget["train_s"] > 0).all()


def test_tiny_suite_end_to_end_with_measurement(tmp_path):
    """Sweep, both designs and the measurement on the tiny preset (shortened); every table written."""
    preset = dataclasses.replace(suite.get_preset("tiny"), name="tiny", max_lr={})
    monkey = suite.PRESETS["tiny"]
    suite.PRESETS["tiny"] = preset
    try:
        suite_run.train_suite(preset, tmp_path, progress=False, log=lambda message: None, stage="lr_sweep")
        assert set(suite.chosen_learning_rates(preset, tmp_path)) == set(preset.sizes)
        suite_run.train_suite(preset, tmp_path, progress=False, log=lambda message: None, stage="main")
        table = suite_tables.collect_checkpoints("tiny", tmp_path)
        assert set(table["phase"]) == {"intermediate", "final", "stable", "decayed"}
        measured = suite_tables.measured_checkpoints(table)
        assert measured["rung"].notna().all() and set(measured["train_seed"]) == set(preset.cosine_seeds)
        suite_measure.measure_suite("tiny", tmp_path, progress=False)
        paths = suite_pipeline.write_tables("tiny", tmp_path, tmp_path / "tables")
        assert {"checkpoints", "train_log", "lr_sweep", "qid", "window_losses", "full_split", "baselines",
                "provenance"} <= set(paths)
        qid = suite_tables.load_suite_table("qid", "tiny", tmp_path / "tables")
        cells = len(preset.qid_bits) * (1 + 2)  # RTN, GPTQ and AWQ at seed 0 ...
        calibrated = len(suite_measure.calibration_checkpoints(measured))
        extra = calibrated * len(preset.qid_bits) * 2 * (len(preset.qid_calibration_seeds) - 1)
        assert len(qid) == len(measured) * cells + extra
        assert qid[["kl", "top1_agree"]].notna().all().all()
        provenance = json.loads(paths["provenance"].read_text())
        assert provenance["niceness"] == os.getpriority(os.PRIO_PROCESS, 0)  # recorded, not typed into the note
        assert "nice -8" not in provenance["note"]
        windows = suite_tables.load_suite_table("window_losses", "tiny", tmp_path / "tables")
        assert len(windows) == (len(qid) + len(measured)) * preset.qid_eval_windows
        # resuming finds everything done: no new rows
        before = len(qid)
        suite_measure.measure_suite("tiny", tmp_path, progress=False)
        suite_pipeline.write_tables("tiny", tmp_path, tmp_path / "tables")
        assert len(suite_tables.load_suite_table("qid", "tiny", tmp_path / "tables")) == before
    finally:
        suite.PRESETS["tiny"] = monkey


def test_checkpoint_keys_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    """A runs folder named relative to a working directory outside the repository (a chapter executed in a copy
    of the book) is keyed by its absolute path, which `checkpoint_path` then finds."""
    from pathlib import Path

    from qid.suite import tables

    folder = tmp_path / "runs" / "tiny" / "step-000001"
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    key = tables._relative(Path("runs/tiny/step-000001"))
    assert Path(tables.checkpoint_path(key)) == folder.resolve()
