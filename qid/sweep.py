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

import csv
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from tqdm import tqdm

from qid import checkpoints as checkpoint_module
from qid import evaluate, provenance, quantize, runtime, textsource
# The results table (columns, cell key, checked appends) lives in qid.results_table; re-exported here.
from qid.results_table import (COLUMNS, KEY_COLUMNS, OutputTableError, append_row, check_output_path,  # noqa: F401
                               finished_keys, load_results)
from qid.results_table import format_value as _format

DEFAULT_EVAL_WINDOW = 2048  # tokens per evaluation window (Pythia's context); capped at the model's context


class SweepSpecError(ValueError):
    """A sweep description that cannot be run; the message names the key or file."""


class SweepSpecFileNotFound(SweepSpecError, FileNotFoundError):
    pass


@dataclass
class SweepSpec:
    """What to measure. Every field has the same name as its YAML key."""

    checkpoints: list = field(default_factory=list)  # folders, 'org/name@revision' or mappings
    methods: list = field(default_factory=lambda: ["rtn", "gptq"])
    bits: list = field(default_factory=lambda: [2, 3, 4, 8])
    group_sizes: list = field(default_factory=lambda: [quantize.DEFAULT_GROUP_SIZE])  # -1 = per-channel
    eval_tokens: int = 65_536  # predicted tokens per evaluation
    eval_window: int | None = None  # tokens per window; None = min(model context, 2048)
    eval_source: str = "corpus:eval"
    calibration_samples: int = 128  # sequences
    calibration_length: int | None = None  # tokens per sequence; None = the evaluation window
    calibration_source: str = "corpus:calibration"
    seed: int = 0  # evaluation windows (and the calibration sample unless calibration_seeds is given)
    calibration_seeds: list | None = None  # GPTQ/AWQ: one cell per calibration sample seed (default [seed])
    kl: bool = True  # also KL(p_16 ‖ p_q) and top-1 agreement on the same windows (when the cache fits)
    device: str = "auto"
    batch_size: int = 8  # windows / calibration sequences per forward pass
    symmetric: bool = False
    act_order: bool = False  # GPTQ column order by decreasing Hessian diagonal
    damp: float = quantize.DEFAULT_DAMP  # GPTQ dampening (fraction of the mean Hessian diagonal)

    def validated(self) -> "SweepSpec":
        """A copy with normalised values; raises SweepSpecError / CheckpointError naming the bad key."""
        def as_list(key, value):
            if value is None or isinstance(value, (str, int, float, dict, os.PathLike)):
                value = [] if value is None else [value]
            value = list(value)
            if not value:
                raise SweepSpecError(f"{key}: the list is empty; give at least one value")
            return value

        checkpoints = as_list("checkpoints", self.checkpoints)
        try:
            parsed = [checkpoint_module.parse_checkpoint(item) for item in checkpoints]
        except checkpoint_module.CheckpointError as error:
            raise SweepSpecError(f"checkpoints: {error}") from error
        for spec in parsed:
            folder = Path(os.path.expanduser(spec.model))
            if spec.is_local and not folder.is_dir():
                what = "is a file, not a model folder" if folder.exists() else "does not exist"
                raise checkpoint_module.CheckpointNotFoundError(f"checkpoints: model folder {spec.model} {what}")
        labels = [spec.label for spec in parsed]  # resolved folders / id@revision: one spelling per checkpoint
        if len(set(labels)) != len(labels):
            raise SweepSpecError(f"checkpoints: listed twice: {sorted({label for label in labels if labels.count(label) > 1})}")
        try:
            methods = list(dict.fromkeys(quantize.validate_method(m) for m in as_list("methods", self.methods)))
            bits = list(dict.fromkeys(quantize.validate_bits(b) for b in as_list("bits", self.bits)))
            group_sizes = list(dict.fromkeys(quantize.validate_group_size(g) for g in as_list("group_sizes", self.group_sizes)))
        except quantize.QuantizationError as error:
            raise SweepSpecError(str(error)) from error
        _positive_int("eval_tokens", self.eval_tokens)
        _positive_int("calibration_samples", self.calibration_samples)
        _positive_int("batch_size", self.batch_size)
        _positive_int("seed", self.seed, minimum=0)
        calibration_seeds = [self.seed] if self.calibration_seeds is None else as_list("calibration_seeds",
                                                                                       self.calibration_seeds)
        for value in calibration_seeds:
            _positive_int("calibration_seeds", value, minimum=0)
        calibration_seeds = list(dict.fromkeys(calibration_seeds))
        if not isinstance(self.kl, bool):
            raise SweepSpecError(f"kl must be true or false, got {self.kl!r}")
        for key in ("eval_window", "calibration_length"):
            if getattr(self, key) is not None:
                _positive_int(key, getattr(self, key), minimum=2)
        for key in ("symmetric", "act_order"):
            if not isinstance(getattr(self, key), bool):
                raise SweepSpecError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if isinstance(self.damp, bool) or not isinstance(self.damp, (int, float)) or not 0 < self.damp < 1:
            raise SweepSpecError(f"damp must be a number in (0, 1), got {self.damp!r}")
        for key in ("eval_source", "calibration_source", "device"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise SweepSpecError(f"{key} must be a non-empty string, got {getattr(self, key)!r}")
        try:
            runtime.resolve_device(self.device)
        except ValueError as error:
            raise SweepSpecError(f"device: {error}") from error
        return replace(self, checkpoints=parsed, methods=methods, bits=bits, group_sizes=group_sizes, damp=float(self.damp),
                       calibration_seeds=calibration_seeds)


def _positive_int(key, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepSpecError(f"{key} must be an integer ≥ {minimum}, got {value!r}")


SPEC_KEYS = tuple(f.name for f in fields(SweepSpec))


def sweep_spec_from_dict(values: dict, source: str | None = None) -> SweepSpec:
    """A validated SweepSpec from a mapping of SweepSpec's fields; `source` (a file name) prefixes errors."""
    prefix = f"{source}: " if source else ""
    if not isinstance(values, dict):
        raise SweepSpecError(f"{prefix}expected a mapping of keys ({', '.join(SPEC_KEYS)}), got {type(values).__name__}")
    unknown = sorted(set(values) - set(SPEC_KEYS))
    if unknown:
        raise SweepSpecError(f"{prefix}unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(SPEC_KEYS)}")
    try:
        return SweepSpec(**values).validated()
    except (SweepSpecError, checkpoint_module.CheckpointError) as error:
        if not prefix:
            raise
        raise type(error)(f"{prefix}{error}") from error


def load_sweep_spec(path: str | os.PathLike, overrides: dict | None = None) -> SweepSpec:
    """A SweepSpec from a YAML file whose keys are SweepSpec's fields; `overrides` (non-None values) win.

    Example::

        checkpoints: [runs/mini/0.3m-step2000, EleutherAI/pythia-160m-deduped@step143000]
        methods: [rtn, gptq]
        bits: [2, 3, 4, 8]
        group_sizes: [128]
        eval_tokens: 65536
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepSpecFileNotFound(f"{path}: sweep file not found")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SweepSpecError(f"{path}: malformed YAML{where}: {problem}") from error
    if values is None:
        raise SweepSpecError(f"{path}: the file is empty; it needs at least 'checkpoints'")
    if not isinstance(values, dict):
        raise SweepSpecError(f"{path}: expected a mapping of keys ({', '.join(SPEC_KEYS)}), got a {type(values).__name__}")
    values = {**values, **{key: value for key, value in (overrides or {}).items() if value is not None}}
    return sweep_spec_from_dict(values, str(path))


def parse_shard(text) -> tuple[int, int] | None:
    """'i/n' → (i, n) with 1 ≤ i ≤ n; None stays None."""
    if text is None:
        return None
    if isinstance(text, tuple):
        index, count = text
    else:
        try:
            index, count = (int(part) for part in str(text).split("/"))
        except ValueError:
            raise SweepSpecError(f"shard must look like i/n (e.g. 2/4), got {text!r}") from None
    if not (count >= 1 and 1 <= index <= count):
        raise SweepSpecError(f"shard {index}/{count}: need 1 ≤ i ≤ n")
    return index, count


# ---------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    checkpoint: checkpoint_module.CheckpointSpec
    method: str
    bits: int
    group_size: int
    calib_seed: int | None = None  # GPTQ/AWQ only: the calibration sample's seed


def sweep_cells(spec: SweepSpec) -> tuple[list[Cell], list[str]]:
    """All cells in a fixed order (checkpoint, method, bits, group size), and notes on combinations left out."""
    cells, notes = [], []
    for checkpoint in spec.checkpoints:
        for method in spec.methods:
            for bits in spec.bits:
                try:
                    quantize.check_combination(method, bits)
                except quantize.QuantizationError as error:
                    note = f"skipped: {error}"
                    if note not in notes:
                        notes.append(note)
                    continue
                seeds = spec.calibration_seeds if method in quantize.CALIBRATED_METHODS else [None]
                for group_size in spec.group_sizes:
                    for calib_seed in seeds:
                        cells.append(Cell(checkpoint, method, bits, group_size, calib_seed))
    return cells, notes


def _settings(spec: SweepSpec, eval_window: int, calibration_length: int) -> dict:
    return {
        "eval_source": spec.eval_source, "eval_window": eval_window, "eval_tokens": spec.eval_tokens,
        "calibration_source": spec.calibration_source, "calibration_length": calibration_length,
        "calib_samples": spec.calibration_samples, "symmetric": spec.symmetric, "act_order": spec.act_order,
        "damp": spec.damp, "seed": spec.seed,
        # batch size changes GPTQ/AWQ results (QiD moved by up to 29% in issue 11); threads change CPU sum order
        "batch_size": spec.batch_size, "threads": torch.get_num_threads(),
    }


def cell_key(cell: Cell, settings: dict) -> tuple[str, ...]:
    values = {"checkpoint": cell.checkpoint.label, "method": cell.method, "bits": cell.bits,
              "group_size": cell.group_size, **settings, "calib_seed": cell.calib_seed}
    return tuple(_format(values[column]) for column in KEY_COLUMNS)


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
    address) runs each checkpoint's cells as a Ray task instead, into the same table (`qid.distributed`).
    """
    if ray is not None:
        from qid import distributed

        return distributed.run_sweep_on_ray(spec, output, address=ray, shard=shard, progress=progress, log=log,
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
            eval_window, calibration_length = _window_lengths(spec, checkpoint, context)
            settings = _settings(spec, eval_window, calibration_length)
            pending = [cell for cell in checkpoint_cells if cell_key(cell, settings) not in done]
            summary["already_done"] += len(checkpoint_cells) - len(pending)
            bar.update(len(checkpoint_cells) - len(pending))
            if not pending:
                continue
            state = _CheckpointState(spec, checkpoint, eval_window, calibration_length, device, dtype, log)
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
                        _append_window_losses(window_losses, state, cell, settings)
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


def _append_window_losses(path, state: "_CheckpointState", cell: Cell, settings: dict) -> None:
    """One JSON line per cell (and one per checkpoint for the 16-bit model) with its per-window losses, so a later
    analysis can bootstrap windows and compare checkpoints on identical windows. Written before the cell's row:
    a crash in between leaves a line without a row, which the reader drops (it keys lines by the cell)."""
    import json

    path = Path(path)
    lines = []
    if not getattr(state, "wrote_reference", False):
        lines.append({"checkpoint": state.info.checkpoint, "step": state.info.step, "method": "none", "bits": 16,
                      "calib_seed": None, "windows": [float(v) for v in state.losses_16]})
        state.wrote_reference = True
    lines.append({"checkpoint": state.info.checkpoint, "step": state.info.step, "method": cell.method,
                  "bits": cell.bits, "calib_seed": cell.calib_seed,
                  "windows": [float(v) for v in state.last_window_losses]})
    with open(path, "a", encoding="utf-8") as stream:
        for line in lines:
            stream.write(json.dumps(line) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def _window_lengths(spec: SweepSpec, checkpoint, context: int | None) -> tuple[int, int]:
    eval_window = spec.eval_window or min(context or DEFAULT_EVAL_WINDOW, DEFAULT_EVAL_WINDOW)
    if context is not None and eval_window > context:
        raise SweepSpecError(f"eval_window={eval_window} exceeds the context of {checkpoint.label} ({context} tokens)")
    return eval_window, spec.calibration_length or eval_window


class _CheckpointState:
    """One loaded checkpoint: its windows, calibration samples, 16-bit losses (and log-probs) and weight snapshot."""

    def __init__(self, spec: SweepSpec, checkpoint, eval_window, calibration_length, device, dtype, log):
        started = time.perf_counter()
        self.spec = spec
        self.eval_window, self.calibration_length = eval_window, calibration_length
        self.model, self.tokenizer, self.info = checkpoint_module.load_checkpoint(checkpoint, device, dtype)
        runtime.seed_everything(spec.seed)
        stream = textsource.token_stream(spec.eval_source, self.tokenizer, role="eval")
        self.windows = evaluate.evaluation_windows(stream, eval_window, spec.eval_tokens, spec.seed)
        self._calibration: dict[int, torch.Tensor] = {}
        self.snapshot = quantize.snapshot_weights(self.model)
        # KL and top-1 agreement need the 16-bit next-token distributions; cached when they fit in memory, from the
        # same forward pass that gives the 16-bit losses.
        self.reference = None
        vocab = self.model.get_output_embeddings().weight.shape[0]
        if spec.kl and evaluate.reference_cache_bytes(self.windows, vocab) <= evaluate.REFERENCE_CACHE_BYTES:
            self.reference, self.losses_16 = evaluate.reference_log_probs(self.model, self.windows, spec.batch_size)
        else:
            self.losses_16 = evaluate.window_losses(self.model, self.windows, spec.batch_size)
        if spec.kl and self.reference is None:
            log(f"{self.info.checkpoint}: KL and top-1 agreement left out (the 16-bit log-probabilities would need "
                f"{evaluate.reference_cache_bytes(self.windows, vocab) / 2**30:.1f} GiB; evaluate fewer tokens)")
        self.setup_seconds = time.perf_counter() - started
        log(f"{self.info.checkpoint}: N={self.info.N:,} D={self.info.D} loss_16={float(self.losses_16.mean()):.4f} "
            f"on {self.windows.shape[0]} windows × {eval_window} tokens")

    def calibration(self, seed: int) -> torch.Tensor:
        """The calibration sample of one seed, drawn on first use (RTN-only sweeps never tokenize the calibration text)."""
        if seed not in self._calibration:
            stream = textsource.token_stream(self.spec.calibration_source, self.tokenizer, role="calibration")
            self._calibration[seed] = textsource.sample_calibration(
                stream, self.spec.calibration_samples, self.calibration_length, seed)
        return self._calibration[seed]

    def measure(self, cell: Cell, settings: dict) -> dict:
        """One cell's row; the quantized model's per-window losses are kept in `self.last_window_losses`."""
        started = time.perf_counter()
        quantize.restore_weights(self.model, self.snapshot)
        calibration = self.calibration(cell.calib_seed) if cell.method in quantize.CALIBRATED_METHODS else None
        runtime.seed_everything(self.spec.seed if cell.calib_seed is None else cell.calib_seed)
        kl = kl_se = top1 = float("nan")
        try:
            report = quantize.quantize_model(
                self.model, cell.method, cell.bits, cell.group_size, calibration,
                symmetric=self.spec.symmetric, act_order=self.spec.act_order, damp=self.spec.damp,
                batch_size=self.spec.batch_size,
            )
            if self.reference is not None:
                losses_q, divergences, agreements = evaluate.window_divergence(
                    self.model, self.windows, self.reference, self.spec.batch_size)
                kl = float(divergences.mean())
                kl_se = float(divergences.std(unbiased=True) / divergences.numel() ** 0.5)
                top1 = float(agreements.mean())
            else:
                losses_q = evaluate.window_losses(self.model, self.windows, self.spec.batch_size)
        finally:
            quantize.restore_weights(self.model, self.snapshot)
        self.last_window_losses = losses_q
        result = evaluate.paired_qid(self.losses_16, losses_q, tokens_per_window=self.eval_window - 1)
        return {
            "family": self.info.family, "checkpoint": self.info.checkpoint, "step": self.info.step,
            "N": self.info.N, "D": self.info.D, "method": cell.method, "bits": cell.bits,
            "group_size": cell.group_size, "loss_16": result.loss_16, "loss_q": result.loss_q,
            "qid": result.qid, "qid_se": result.qid_se, "kl": kl, "kl_se": kl_se, "top1_agree": top1,
            "eval_windows": result.windows, **settings, "calib_seed": cell.calib_seed,
            "seconds": round(time.perf_counter() - started, 3),
            "quantize_seconds": round(report.seconds, 3),
        }

    def close(self):
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def results_for(spec: SweepSpec, path: str | os.PathLike):
    """The rows of the table at `path` that belong to `spec`'s cells (other sweeps may share the file)."""
    spec = spec.validated()
    finished_keys(path)  # drops a partial last line, so the raw rows and the table align
    table = load_results(path)
    cells, _ = sweep_cells(spec)
    keys = set()
    for cell in cells:
        eval_window, calibration_length = _window_lengths(spec, cell.checkpoint, checkpoint_module.context_length(cell.checkpoint))
        keys.add(cell_key(cell, _settings(spec, eval_window, calibration_length)))
    with open(path, newline="") as handle:
        raw = list(csv.DictReader(handle))
    mask = [tuple(row[column] for column in KEY_COLUMNS) in keys for row in raw[: len(table)]]
    return table[mask].reset_index(drop=True)
