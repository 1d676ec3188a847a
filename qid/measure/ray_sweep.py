"""QiD sweeps on a Ray cluster: one Ray task per checkpoint.

`run_sweep_on_ray` runs the same cells as `qid.measure.sweep.run_sweep`, but each checkpoint's pending cells go to a
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

The cluster itself (joining, resources, retries) is `qid.common.raycluster`.
"""

from __future__ import annotations

import dataclasses
import sys

from qid.common import provenance, runtime
from qid.common.raycluster import DEFAULT_ATTEMPTS, DistributedSweepError, connect, failure_text, ray_module, task_resources
from qid.measure import checkpoints as checkpoint_module
from qid.measure import quantize, results_table, sweep_spec, textsource
from qid.measure.checkpoint_cells import CheckpointState

# Errors caused by the inputs, not by the machine: retrying them would fail the same way.
INPUT_ERRORS = (checkpoint_module.CheckpointError, textsource.TextSourceError, sweep_spec.SweepSpecError)


def check_device_name(device) -> None:
    """The device is resolved on each worker (the driver may have no GPU): check only its spelling here."""
    if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise sweep_spec.SweepSpecError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")


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
    state = CheckpointState(spec, checkpoint, eval_window, calibration_length, device, dtype, log)
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


def run_sweep_on_ray(spec, output, address: str | None = None, shard=None, progress: bool = True,
                     attempts: int = DEFAULT_ATTEMPTS, cpus_per_task: int = 1, num_cpus: int | None = None,
                     log=None, after_row=None, worker_hook=None) -> dict:
    """`qid.measure.sweep.run_sweep` with each checkpoint's pending cells as one Ray task; the same table and summary.

    after_row(row) runs in the driver after each row is appended; worker_hook(row) in the worker before a
    row is sent (both for tests). Raises DistributedSweepError naming the checkpoints that failed `attempts`
    times, after the others have finished.
    """
    from tqdm import tqdm

    ray = ray_module()
    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an integer ≥ 1, got {attempts!r}")
    log = log or (lambda message: print(message, file=sys.stderr))
    device = getattr(spec, "device", "auto")
    check_device_name(device)
    spec = dataclasses.replace(dataclasses.replace(spec, device="cpu").validated(), device=device)
    if not isinstance(cpus_per_task, int) or cpus_per_task < 1:
        raise ValueError(f"cpus_per_task must be an integer ≥ 1, got {cpus_per_task!r}")
    shard = sweep_spec.parse_shard(shard)
    output = results_table.check_output_path(output)  # before any work, as the serial sweep does
    cells, notes = sweep_spec.sweep_cells(spec)
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
            eval_window, calibration_length = sweep_spec.window_lengths(spec, cell.checkpoint, context)
            # A task computes with `cpus_per_task` torch threads (one per CPU it holds); the key records that.
            settings = {**sweep_spec.measurement_settings(spec, eval_window, calibration_length), "threads": cpus_per_task}
            work[label] = {"checkpoint": cell.checkpoint, "eval_window": eval_window,
                           "calibration_length": calibration_length, "settings": settings, "pending": {}}
        key = sweep_spec.cell_key(cell, work[label]["settings"])
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
                    reason, retriable = failure_text(error, INPUT_ERRORS)
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
    """`qid.measure.sweep.results_for` for a sweep run by `run_sweep_on_ray`: its cell keys record the tasks' thread count
    (`cpus_per_task`), not this process's."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(cpus_per_task)  # sweep_spec.results_for keys cells with the current thread count
    try:
        return sweep_spec.results_for(spec, path)
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ suite training
