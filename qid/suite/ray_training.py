"""The suite's training on a Ray cluster: one Ray task per training group, resumable like `qid.suite.run.train_suite`.

A WSD constant run and its decay branches stay in one group, in order (a branch starts from its constant
run's checkpoint). Training writes checkpoints under `runs_dir`, which every node must mount. The cluster
itself (joining, resources, retries) is `qid.common.raycluster`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from qid.common.raycluster import DEFAULT_ATTEMPTS, DistributedSweepError, connect, failure_text, ray_module, task_resources
from qid.suite import plan as suite


def train_run_group(preset, runs_dir, runs, threads: int = 1, progress: bool = False) -> list[str]:
    """Ray task: train one group's runs in order (a WSD branch starts from its constant run's checkpoint)."""
    import torch

    from qid.suite import train as training

    torch.set_num_threads(threads)  # one per CPU the task holds (Ray's workers would otherwise guess)

    finals = []
    for run in runs:
        # The same per-run configuration as qid.suite.run.train_suite writes.
        config = dataclasses.replace(run.config, extra={"preset": preset.name, "phase": run.phase, "group": run.group})
        finals.append(str(training.train(run.folder(runs_dir, preset.name), config, progress=progress)))
    return finals


def train_suite_on_ray(preset="cpu", runs_dir=None, designs=None, sizes=None, device: str = "cpu",
                       address: str | None = None, stage: str = "all", attempts: int = DEFAULT_ATTEMPTS,
                       cpus_per_task: int = 1, num_cpus: int | None = None, log=None) -> list[Path]:
    """Train every planned run of a preset, one Ray task per group; resumable like `qid.suite.run.train_suite`.

    stage 'all' runs the learning-rate sweep's groups first, then the designs' (which need its choice).
    `runs_dir` must be on a filesystem every node mounts. A group that still fails after `attempts` tries
    is named in the error raised once the other groups of its stage have finished.
    """
    ray = ray_module()
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    spec = suite.get_preset(preset) if isinstance(preset, str) else preset.validate()
    runs_dir = Path(runs_dir if runs_dir is not None else suite.DEFAULT_RUNS_DIR).resolve()
    designs = designs if designs is not None else suite.DESIGNS
    if stage not in suite.STAGES:
        raise ValueError(f"stage {stage!r}: use one of {', '.join(suite.STAGES)}")
    resources = connect(address, num_cpus=num_cpus, log=log)
    remote = ray.remote(train_run_group).options(max_retries=0, **task_resources(device, resources, cpus_per_task))
    finals = []
    for name in (("lr_sweep", "main") if stage == "all" else (stage,)):
        groups: dict[str, list] = {}
        for run in suite.planned_stage(spec, name, runs_dir, designs, sizes, device):
            groups.setdefault(run.group, []).append(run)
        finals.extend(_run_groups(ray, remote, spec, runs_dir, groups, attempts, cpus_per_task, log))
    return finals


def _run_groups(ray, remote, spec, runs_dir, groups: dict, attempts: int, cpus_per_task: int, log) -> list[Path]:
    """Run every group as a task, retrying failed ones; raise naming those that failed every try."""
    tries = {group: 1 for group in groups}
    running = {remote.remote(spec, runs_dir, runs, cpus_per_task): group for group, runs in groups.items()}
    finals, failed = [], []
    try:
        while running:
            (reference,), _ = ray.wait(list(running), num_returns=1)
            group = running.pop(reference)
            try:
                finals.extend(Path(folder) for folder in ray.get(reference))
                log(f"[{spec.name}] group {group}: done")
            except ray.exceptions.RayError as error:
                reason, retriable = failure_text(error)
                if retriable and tries[group] < attempts:
                    tries[group] += 1
                    log(f"[{spec.name}] group {group} failed ({reason}); try {tries[group]} of {attempts} resumes it")
                    running[remote.remote(spec, runs_dir, groups[group], cpus_per_task)] = group
                else:
                    failed.append(f"{group}: {reason}")
    finally:
        for reference in running:
            ray.cancel(reference, force=True)
    if failed:
        raise DistributedSweepError(f"training group(s) failed after up to {attempts} tries: {'; '.join(failed)}; "
                                    "rerun the same command to resume them", {"finals": finals, "failed": failed})
    return finals
