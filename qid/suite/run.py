"""Training the suite: every planned run of a preset (or of one shard), resumably, in this process or on Ray.

What to train is `qid.suite.plan` (presets, the learning-rate sweep, the designs' runs); how one run trains
is `qid.suite.train`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from qid.suite import train as training
from qid.suite.plan import DEFAULT_RUNS_DIR, DESIGNS, SuitePreset, get_preset, planned_stage, shard_runs


def train_suite(preset: "str | SuitePreset" = "cpu", runs_dir: str | Path = DEFAULT_RUNS_DIR, designs=DESIGNS, sizes=None,
                device: str = "cpu", shard: tuple[int, int] | None = None, progress: bool = True,
                log=None, ray: str | None = None, stage: str = "all") -> list[Path]:
    """Train (or resume) every planned run of one shard; returns the final checkpoint folders.

    stage: 'lr_sweep' (the short runs that choose each size's peak lr), 'main' (both designs; needs the finished
    sweep) or 'all' (sweep, then main, in this process).
    `ray` ('local' or a cluster address): every run group is a Ray task instead (`qid.suite.ray_training`)."""
    if ray is not None:
        from qid.suite import ray_training

        if shard is not None:
            raise ValueError("--shard and --ray: choose one (Ray schedules every run group itself)")
        return ray_training.train_suite_on_ray(preset, runs_dir, designs, sizes, device, address=ray, stage=stage,
                                                log=log)
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    spec = get_preset(preset) if isinstance(preset, str) else preset.validate()
    if stage == "all":
        return [*train_suite(spec, runs_dir, designs, sizes, device, shard, progress, log, stage="lr_sweep"),
                *train_suite(spec, runs_dir, designs, sizes, device, shard, progress, log, stage="main")]
    runs = shard_runs(planned_stage(spec, stage, runs_dir, designs, sizes, device), shard)
    finals = []
    for run in runs:
        folder = run.folder(runs_dir, spec.name)
        started = time.perf_counter()
        log(f"[{spec.name}] {run.design}/{run.name}: {run.config.steps} steps × {run.config.tokens_per_step} tokens "
            f"({run.config.schedule}, lr {run.config.max_lr:g}, seed {run.config.seed}) -> {folder}")
        config = dataclasses.replace(run.config, extra={"preset": spec.name, "phase": run.phase, "group": run.group})
        finals.append(training.train(folder, config, progress=progress))
        log(f"[{spec.name}] {run.design}/{run.name}: done in {time.perf_counter() - started:.0f} s")
    return finals
