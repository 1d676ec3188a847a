"""Resumable QiD sweeps: checkpoints × methods × bits × group sizes, one tidy CSV row per finished cell.

A sweep is described by a `SweepSpec` (built from parameters, or from a small YAML file with the same
keys, see `load_sweep_spec`). `run_sweep` runs it cell by cell:

* each checkpoint is loaded once; its evaluation windows, calibration sample and **16-bit per-window
  losses are computed once** and shared by all its cells; every cell restores the 16-bit weights first;
* each finished cell is appended to the CSV at once, under a file lock (`filelock`), as one complete line
  followed by fsync: a crash or Ctrl-C loses no finished row, and concurrent writers (shards, notebooks)
  never interleave or duplicate rows (the lock holder re-reads the finished keys before writing);
* a rerun skips every cell whose key (checkpoint, method, bits, group size and the evaluation and
  calibration settings) is already in the file, so an interrupted sweep resumes where it stopped;
* ``shard=(i, n)`` (CLI ``--shard i/n``, 1 ≤ i ≤ n) runs every n-th pending cell starting at the i-th; n
  shards writing to the same file, in any order or at once, produce the same table as one unsharded run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from qid.common import provenance, runtime
from qid.measure import checkpoints as checkpoint_module
from qid.measure import quantize
from qid.measure.checkpoint_cells import CheckpointState, append_window_losses
from qid.measure.checkpoint_identity import known_labels
# The sweep's description, cells and keys (qid.measure.sweep_spec) and its results table (columns, checked appends;
# qid.measure.results_table) are re-exported here: `qid.measure.sweep` is the one module a caller needs.
from qid.measure.results_table import (COLUMNS, KEY_COLUMNS, OutputTableError, append_row, check_output_path,  # noqa: F401
                                       finished_keys, load_results)
from qid.measure.sweep_spec import (DEFAULT_EVAL_WINDOW, SPEC_KEYS, Cell, SweepSpec, SweepSpecError,  # noqa: F401
                                    SweepSpecFileNotFound, cell_key, load_sweep_spec, measurement_settings,
                                    parse_shard, results_for, sweep_cells, sweep_spec_from_dict, window_lengths)

# ---------------------------------------------------------------------------------------------- running
def run_sweep(
    spec: SweepSpec,
    output: str | os.PathLike,
    shard=None,
    progress: bool = True,
    after_cell=None,
    log=None,
    ray: str | None = None,
    window_losses: str | os.PathLike | None = None,
) -> dict:
    """Run the pending cells of `spec` (of one shard, if given), appending each finished row to `output`.

    after_cell(row) is called after each row is written (tests inject failures there). Returns a summary:
    cells in the sweep, already done, written now, skipped (with reasons). `ray` ('local' or a cluster
    address) runs each checkpoint's cells as a Ray task instead, into the same table (`qid.measure.ray_sweep`).
    """
    if ray is not None:
        from qid.measure import ray_sweep

        return ray_sweep.run_sweep_on_ray(spec, output, address=ray, shard=shard, progress=progress, log=log,
                                            after_row=after_cell)
    spec = spec.validated()
    log = log or (lambda message: print(message, file=sys.stderr))
    shard = parse_shard(shard)
    output = check_output_path(output)  # before any work: a wrong --output fails at once and is left untouched
    cells, notes = sweep_cells(spec)
    for note in notes:
        log(note)
    if shard is not None:
        index, count = shard
        cells = cells[index - 1 :: count]
    done = finished_keys(output)
    # a hard-linked or copied checkpoint folder is the checkpoint it copies (qid.measure.checkpoint_identity)
    renamed = known_labels([cell.checkpoint for cell in cells], (key[0] for key in done))
    cells = [replace(cell, checkpoint=renamed.get(cell.checkpoint, cell.checkpoint)) for cell in cells]
    for original, named in renamed.items():
        log(f"{original.label}: the same weights as {named.name}; measured under that name")
    device = runtime.resolve_device(spec.device)
    dtype = runtime.compute_dtype(device)
    summary = {"cells": len(cells), "already_done": 0, "written": 0, "skipped": []}
    by_checkpoint: dict = {}
    for cell in cells:
        by_checkpoint.setdefault(cell.checkpoint, []).append(cell)
    unavailable: dict[str, str] = {}
    versions, commit = provenance.package_versions_string(), provenance.git_commit()
    device_text = runtime.device_description(device)

    bar = tqdm(total=len(cells), desc="QiD sweep", unit="cell", disable=not progress)
    try:
        for checkpoint, checkpoint_cells in by_checkpoint.items():
            # The key needs the window length, which may default to the model's context: read the config only.
            context = checkpoint_module.context_length(checkpoint)
            eval_window, calibration_length = window_lengths(spec, checkpoint, context)
            settings = measurement_settings(spec, eval_window, calibration_length)
            pending = [cell for cell in checkpoint_cells if cell_key(cell, settings) not in done]
            summary["already_done"] += len(checkpoint_cells) - len(pending)
            bar.update(len(checkpoint_cells) - len(pending))
            if not pending:
                continue
            state = CheckpointState(spec, checkpoint, eval_window, calibration_length, device, dtype, log)
            try:
                for cell in pending:
                    if cell.method in unavailable:
                        summary["skipped"].append((cell, unavailable[cell.method]))
                        bar.update(1)
                        continue
                    bar.set_postfix_str(f"{Path(checkpoint.label).name} {cell.method} {cell.bits}b g{cell.group_size}")
                    try:
                        row = state.measure(cell, settings)
                    except quantize.QuantizerUnavailable as error:
                        unavailable[cell.method] = str(error)
                        log(f"skipping {cell.method}: {error}")
                        summary["skipped"].append((cell, str(error)))
                        bar.update(1)
                        continue
                    row.update(device=device_text, dtype=str(dtype).removeprefix("torch."), versions=versions,
                               git_commit=commit, finished_at=provenance.utc_now())
                    if window_losses is not None:
                        append_window_losses(window_losses, state, cell, settings)
                    if append_row(output, row):
                        summary["written"] += 1
                    else:
                        summary["already_done"] += 1  # another writer finished it meanwhile
                    done.add(cell_key(cell, settings))
                    bar.update(1)
                    if after_cell is not None:
                        after_cell(row)
            finally:
                state.close()
    finally:
        bar.close()
    return summary
