"""What a QiD sweep is: its description (`SweepSpec`, from parameters or a YAML file), its cells, and each cell's key.

A cell is one checkpoint × method × bits × group size (× calibration seed for GPTQ/AWQ). Its key is the
checkpoint, the cell's own values and the evaluation and calibration settings (`measurement_settings`), so a
resumed sweep recognises finished cells in its results table (`qid.measure.results_table`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from qid.common import runtime
from qid.measure import checkpoints as checkpoint_module
from qid.measure import quantize
from qid.measure.results_table import KEY_COLUMNS, finished_keys, format_value, load_results


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
    """All cells in a fixed order (checkpoint, method, bits, group size), and notes on combinations left out.

    A cell's group size is the one its method really uses (`quantize.effective_group_size`: MXFP4 blocks of 32,
    NVFP4 of 16 whatever was asked), and each cell appears once however many requested sizes map to it."""
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
                group_sizes = dict.fromkeys(quantize.effective_group_size(method, size) for size in spec.group_sizes)
                for group_size in group_sizes:
                    for calib_seed in seeds:
                        cells.append(Cell(checkpoint, method, bits, group_size, calib_seed))
    return cells, notes


def measurement_settings(spec: SweepSpec, eval_window: int, calibration_length: int) -> dict:
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
    return tuple(format_value(values[column]) for column in KEY_COLUMNS)





def window_lengths(spec: SweepSpec, checkpoint, context: int | None) -> tuple[int, int]:
    eval_window = spec.eval_window or min(context or DEFAULT_EVAL_WINDOW, DEFAULT_EVAL_WINDOW)
    if context is not None and eval_window > context:
        raise SweepSpecError(f"eval_window={eval_window} exceeds the context of {checkpoint.label} ({context} tokens)")
    return eval_window, spec.calibration_length or eval_window



def results_for(spec: SweepSpec, path: str | os.PathLike):
    """The rows of the table at `path` that belong to `spec`'s cells (other sweeps may share the file)."""
    spec = spec.validated()
    finished_keys(path)  # drops a partial last line, so the raw rows and the table align
    table = load_results(path)
    cells, _ = sweep_cells(spec)
    keys = set()
    for cell in cells:
        eval_window, calibration_length = window_lengths(spec, cell.checkpoint, checkpoint_module.context_length(cell.checkpoint))
        keys.add(cell_key(cell, measurement_settings(spec, eval_window, calibration_length)))
    with open(path, newline="") as handle:
        raw = list(csv.DictReader(handle))
    mask = [tuple(row[column] for column in KEY_COLUMNS) in keys for row in raw[: len(table)]]
    return table[mask].reset_index(drop=True)
