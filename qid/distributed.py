"""Sweeps and suite training on a Ray cluster: one Ray task per checkpoint (or per training group).

`run_sweep_on_ray` runs the same cells as `qid.sweep.run_sweep`, but each checkpoint's pending cells go to a
Ray task with its own resource request (one GPU on a cluster that has GPUs, `cpus_per_task` CPUs
otherwise). The task loads the checkpoint once, measures its cells with the sweep's own measurement code and
*streams* each finished row back (a Ray generator task); the driver appends every row to the output table
with the sweep's locked, resumable `append_row` as soon as it arrives. So:

* the table is written only by the driver, on the driver's disk: workers need no shared filesystem for
  results (they do need to reach the checkpoints: hub ids through the hub or a local Hugging Face cache,
  local folders on a filesystem every node mounts);
* a rerun, or a driver restarted after a crash or Ctrl-C, skips the cells already in the table, exactly as
  the serial sweep does, and no row is ever written twice (`append_row` re-checks the key under the lock);
* a task that fails (an exception, a killed worker process, a lost node) is resubmitted with only the
  cells that have no row yet, up to `attempts` tries in all; a checkpoint that still fails is named in a
  `DistributedSweepError` raised after every other checkpoint has finished. Input errors (a missing
  revision, an unreadable text source) are not retried: they would fail the same way.

`train_suite_on_ray` trains the suite's run groups (a WSD constant run and its decay branches stay in one
group, in order) as Ray tasks; training writes checkpoints under `runs_dir`, which every node must mount.

`connect(address)` joins a cluster: None starts a private local one; 'auto' joins the one started on this
machine with `ray start`; 'ray://HOST:10001' uses Ray Client. On a cluster the repository (without .venv,
.git, runs/) is shipped to the workers as the job's working directory, so they run the driver's code.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from qid import checkpoints as checkpoint_module
from qid import provenance, quantize, results_table, runtime, sweep, textsource
from qid.paths import REPO_ROOT

DEFAULT_ATTEMPTS = 3  # tries per checkpoint: the first run and two retries
# Not shipped to a cluster's workers: environments, history, large regenerable outputs.
SHIPPING_EXCLUDES = [".git", ".venv", ".venv-bench", "runs", "_build", "chapters", "**/__pycache__", "*.pt",
                     "*.egg-info", ".pytest_cache"]
# Errors caused by the inputs, not by the machine: retrying them would fail the same way.
INPUT_ERRORS = (checkpoint_module.CheckpointError, textsource.TextSourceError, sweep.SweepSpecError)


class DistributedSweepError(RuntimeError):
    """Some checkpoints (named in the message) failed after their retries; `summary` has everything else."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def _ray():
    try:
        import ray
    except ImportError as error:  # pragma: no cover - ray is a requirement
        raise RuntimeError("--ray needs the `ray` package (pip install -r requirements.txt)") from error
    return ray


def connect(address: str | None = None, num_cpus: int | None = None, log=None) -> dict:
    """Join (or start) a Ray cluster unless already connected; returns the cluster's resources.

    address None or 'local': a private cluster on this machine (`num_cpus` CPUs; all of them when None).
    Anything else ('auto', 'HOST:6379', 'ray://HOST:10001') joins a running cluster and ships the repository
    as the job's working directory.
    """
    ray = _ray()
    log = log or (lambda message: print(message, file=sys.stderr))
    if not ray.is_initialized():
        if address in (None, "", "local"):
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            runtime_env = {"working_dir": str(REPO_ROOT), "excludes": SHIPPING_EXCLUDES}
            try:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
            except ConnectionError as error:
                raise ValueError(
                    f"--ray {address}: no Ray cluster reachable there ({str(error).splitlines()[0]}); a cluster with "
                    "token authentication (the default of `ray start` in Ray 2.60) also needs RAY_AUTH_MODE=token "
                    "and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token) in the driver's environment") from error
    resources = ray.cluster_resources()
    log(f"Ray cluster: {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s) on "
        f"{len([node for node in ray.nodes() if node.get('Alive')])} node(s)")
    return resources


def task_resources(device: str, resources: dict, cpus_per_task: int = 1) -> dict:
    """The resource request of one task: a whole GPU when the cluster has GPUs and the device allows it."""
    gpus = resources.get("GPU", 0)
    if str(device).startswith("cuda") and gpus < 1:
        raise ValueError(f"device={device!r}: the Ray cluster has no GPU; use --device auto or cpu")
    if device != "cpu" and gpus >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": cpus_per_task}


def _check_device_name(device) -> None:
    """The device is resolved on each worker (the driver may have no GPU): check only its spelling here."""
    if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise sweep.SweepSpecError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")


# ---------------------------------------------------------------------------------------------- worker
def measure_checkpoint_cells(spec, checkpoint, cells, eval_window, calibration_length, settings, worker_hook=None):
    """Ray generator task: load one checkpoint, measure `cells`, yield one record per cell as it finishes.

    A record is {'index': position in `cells`, 'row': row} or {'index': ..., 'unavailable': reason} (the driver
    keys cells itself: a worker never recomputes a key with code that might differ). Rows carry the same
    values `run_sweep` writes; the driver adds `git_commit` (the code it shipped). `worker_hook(row)` is
    called before each row is yielded (tests inject failures there).
    """
    import torch

    # The thread count is part of the cell key (it changes the order of CPU sums): use what the key says.
    torch.set_num_threads(int(settings["threads"]))
    device = runtime.resolve_device(spec.device)
    dtype = runtime.compute_dtype(device)
    device_text, versions = runtime.device_description(device), provenance.package_versions_string()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731 - the worker's log
    state = sweep._CheckpointState(spec, checkpoint, eval_window, calibration_length, device, dtype, log)
    unavailable: dict[str, str] = {}
    try:
        for index, cell in enumerate(cells):
            if cell.method in unavailable:
                yield {"index": index, "unavailable": unavailable[cell.method]}
                continue
            try:
                row = state.measure(cell, settings)
            except quantize.QuantizerUnavailable as error:
                unavailable[cell.method] = str(error)
                yield {"index": index, "unavailable": str(error)}
                continue
            row.update(device=device_text, dtype=str(dtype).removeprefix("torch."), versions=versions,
                       finished_at=provenance.utc_now())
            if worker_hook is not None:
                worker_hook(row)
            yield {"index": index, "row": row}
    finally:
        state.close()


# ---------------------------------------------------------------------------------------------- driver
def _failure_text(error) -> tuple[str, bool]:
    """(one line describing a task failure, whether retrying could help)."""
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}", not isinstance(cause, INPUT_ERRORS)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}", True


def run_sweep_on_ray(spec, output, address: str | None = None, shard=None, progress: bool = True,
                     attempts: int = DEFAULT_ATTEMPTS, cpus_per_task: int = 1, num_cpus: int | None = None,
                     log=None, after_row=None, worker_hook=None) -> dict:
    """`qid.sweep.run_sweep` with each checkpoint's pending cells as one Ray task; the same table and summary.

    after_row(row) runs in the driver after each row is appended; worker_hook(row) in the worker before a
    row is sent (both for tests). Raises DistributedSweepError naming the checkpoints that failed `attempts`
    times, after the others have finished.
    """
    from tqdm import tqdm

    ray = _ray()
    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an integer ≥ 1, got {attempts!r}")
    log = log or (lambda message: print(message, file=sys.stderr))
    device = getattr(spec, "device", "auto")
    _check_device_name(device)
    spec = dataclasses.replace(dataclasses.replace(spec, device="cpu").validated(), device=device)
    if not isinstance(cpus_per_task, int) or cpus_per_task < 1:
        raise ValueError(f"cpus_per_task must be an integer ≥ 1, got {cpus_per_task!r}")
    shard = sweep.parse_shard(shard)
    output = results_table.check_output_path(output)  # before any work, as the serial sweep does
    cells, notes = sweep.sweep_cells(spec)
    for note in notes:
        log(note)
    if shard is not None:
        cells = cells[shard[0] - 1 :: shard[1]]
    done = results_table.finished_keys(output)
    summary = {"cells": len(cells), "already_done": 0, "written": 0, "skipped": [], "failed": []}
    work: dict[str, dict] = {}  # checkpoint label -> what its task needs and its pending cells by key
    for cell in cells:
        label = cell.checkpoint.label
        if label not in work:
            context = checkpoint_module.context_length(cell.checkpoint)  # reads the config only
            eval_window, calibration_length = sweep._window_lengths(spec, cell.checkpoint, context)
            # A task computes with `cpus_per_task` torch threads (one per CPU it holds); the key records that.
            settings = {**sweep._settings(spec, eval_window, calibration_length), "threads": cpus_per_task}
            work[label] = {"checkpoint": cell.checkpoint, "eval_window": eval_window,
                           "calibration_length": calibration_length, "settings": settings, "pending": {}}
        key = sweep.cell_key(cell, work[label]["settings"])
        if key in done:
            summary["already_done"] += 1
        else:
            work[label]["pending"][key] = cell
    work = {label: item for label, item in work.items() if item["pending"]}
    bar = tqdm(total=len(cells), initial=summary["already_done"], desc="QiD sweep (Ray)", unit="cell", disable=not progress)
    if not work:
        bar.close()
        return summary

    resources = connect(address, num_cpus=num_cpus, log=log)
    remote = ray.remote(measure_checkpoint_cells).options(max_retries=0, **task_resources(device, resources, cpus_per_task))
    commit = provenance.git_commit()
    tries = {label: 0 for label in work}
    running: dict = {}  # generator -> (checkpoint label, the keys of the cells it was sent, in order)

    def submit(label):
        item = work[label]
        tries[label] += 1
        keys = list(item["pending"])
        generator = remote.remote(spec, item["checkpoint"], [item["pending"][key] for key in keys],
                                  item["eval_window"], item["calibration_length"], item["settings"], worker_hook)
        running[generator] = (label, keys)

    for label in work:
        submit(label)
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for generator in ready:
                label, keys = running[generator]
                try:
                    record = ray.get(next(generator))
                except StopIteration:
                    del running[generator]
                    continue
                except ray.exceptions.RayError as error:
                    del running[generator]
                    reason, retriable = _failure_text(error)
                    left = len(work[label]["pending"])
                    if retriable and tries[label] < attempts:
                        log(f"{label}: task failed on try {tries[label]} of {attempts} ({reason}); "
                            f"resubmitting its {left} unfinished cell(s)")
                        submit(label)
                    else:
                        log(f"{label}: task failed on try {tries[label]} of {attempts} ({reason}); giving up")
                        summary["failed"].append((label, reason, left))
                        bar.update(left)
                    continue
                cell = work[label]["pending"].pop(keys[record["index"]])
                if "unavailable" in record:
                    summary["skipped"].append((cell, record["unavailable"]))
                else:
                    row = {**record["row"], "git_commit": commit}
                    if results_table.append_row(output, row):
                        summary["written"] += 1
                    else:
                        summary["already_done"] += 1  # another writer finished it meanwhile
                    if after_row is not None:
                        after_row(row)
                bar.update(1)
    finally:
        for generator in running:
            ray.cancel(generator, force=True)
        bar.close()
    if summary["failed"]:
        named = "; ".join(f"{label} ({left} cell(s) unfinished): {reason}" for label, reason, left in summary["failed"])
        raise DistributedSweepError(
            f"{len(summary['failed'])} checkpoint(s) failed after up to {attempts} tries: {named}. "
            f"{summary['written']} row(s) written to {output}; rerun the same command to retry only the missing cells",
            summary)
    return summary


def results_for(spec, path, cpus_per_task: int = 1):
    """`qid.sweep.results_for` for a sweep run by `run_sweep_on_ray`: its cell keys record the tasks' thread count
    (`cpus_per_task`), not this process's."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(cpus_per_task)  # sweep.results_for keys cells with the current thread count
    try:
        return sweep.results_for(spec, path)
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ suite training
def train_run_group(preset, runs_dir, runs, threads: int = 1, progress: bool = False) -> list[str]:
    """Ray task: train one group's runs in order (a WSD branch starts from its constant run's checkpoint)."""
    import torch

    from qid import train as training

    torch.set_num_threads(threads)  # one per CPU the task holds (Ray's workers would otherwise guess)

    finals = []
    for run in runs:
        # The same per-run configuration as qid.suite.train_suite writes.
        config = dataclasses.replace(run.config, extra={"preset": preset.name, "phase": run.phase, "group": run.group})
        finals.append(str(training.train(run.folder(runs_dir, preset.name), config, progress=progress)))
    return finals


def train_suite_on_ray(preset="cpu", runs_dir=None, designs=None, sizes=None, device: str = "cpu",
                       address: str | None = None, stage: str = "all", attempts: int = DEFAULT_ATTEMPTS,
                       cpus_per_task: int = 1, num_cpus: int | None = None, log=None) -> list[Path]:
    """Train every planned run of a preset, one Ray task per group; resumable like `qid.suite.train_suite`.

    stage 'all' runs the learning-rate sweep's groups first, then the designs' (which need its choice).
    `runs_dir` must be on a filesystem every node mounts. A group that still fails after `attempts` tries
    is named in the error raised once the other groups of its stage have finished.
    """
    from qid import suite

    ray = _ray()
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
                reason, retriable = _failure_text(error)
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
