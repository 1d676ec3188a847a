"""Chapter parameters, declared once and checked in one place.

Each chapter's parameters cell holds the defaults (papermill overrides them); the declaration here says what each
one may be: its type, allowed values or range, and unit. `apply_chapter_parameters` is the one line a chapter
calls right after its parameters cell:

    from qid.chapters.params import apply_chapter_parameters
    apply_chapter_parameters("02_measure_qid", globals())

It coerces what papermill passes as text (`papermill ... -p BITS "[3, 4]"` arrives as the string "[3, 4]",
`-p EVAL_TOKENS 2048.0` as a float) to the declared type, writes the coerced values back into the chapter's
namespace, and raises one `ParameterError` naming the parameter when a value does not fit. `qid.chapters.runner` runs the
same check on `-p` overrides before executing anything. A chapter not declared here is left alone.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import yaml

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}


class ParameterError(ValueError):
    """A chapter parameter that does not fit its declaration; the message names the parameter."""


@dataclass(frozen=True)
class Parameter:
    """One chapter parameter: `kind` is int, float, str, bool, dict or list (with `item` the element type).

    `allowed` lists the permitted values (of the value, or of each element of a list); it may be a
    "module:NAME" string, resolved on use, so declaring a chapter does not import torch. `minimum`/`maximum`
    bound numbers (or list elements); `special` values are accepted as they are (like -1 for "per channel");
    `optional` admits None.
    """

    name: str
    kind: type
    unit: str = ""
    item: type | None = None
    allowed: tuple | str | None = None
    minimum: float | None = None
    maximum: float | None = None
    special: tuple = ()
    optional: bool = False
    nonempty: bool = True
    below_maximum: bool = False  # maximum is exclusive
    above_minimum: bool = False  # minimum is exclusive

    def describe(self) -> str:
        """What the parameter may be, in words (used in every error message)."""
        if self.kind is list:
            element = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}.get(self.item, "values")
            text = f"{'a non-empty' if self.nonempty else 'a'} list of {element}"
        else:
            text = _TYPE_NAMES.get(self.kind, self.kind.__name__)
        allowed = self.allowed_values()
        if allowed is not None:
            text += f" from {', '.join(map(str, allowed))}"
        if self.minimum is not None and self.maximum is not None:
            exclusive = self.below_maximum or self.above_minimum
            text += f" from {self.minimum:g} to {self.maximum:g}" + (" (exclusive)" if exclusive else "")
        elif self.minimum is not None:
            text += f" {'>' if self.above_minimum else '>='} {self.minimum:g}"
        elif self.maximum is not None:
            text += f" {'<' if self.below_maximum else '<='} {self.maximum:g}"
        if self.special:
            text += f", or {' or '.join(map(repr, self.special))}"
        if self.optional:
            text += ", or None"
        return text + (f" ({self.unit})" if self.unit else "")

    def allowed_values(self) -> tuple | None:
        if isinstance(self.allowed, str):
            module, attribute = self.allowed.split(":")
            return tuple(getattr(importlib.import_module(module), attribute))
        return self.allowed


def _fail(parameter: Parameter, value) -> ParameterError:
    return ParameterError(f"parameter {parameter.name} must be {parameter.describe()}, got {value!r}")


def _parse_text(text: str):
    """Text as papermill's -p passes it, read as YAML: '[3, 4]' -> [3, 4], '1e-3' -> 0.001, 'None' -> None."""
    stripped = text.strip()
    if stripped in ("None", "none", "null", "~"):
        return None
    try:
        return yaml.safe_load(stripped)
    except yaml.YAMLError:
        return text


def _scalar(kind: type, value):
    """Coerce one scalar to `kind`; None when it cannot be (the caller raises)."""
    if isinstance(value, str) and kind is not str:
        value = _parse_text(value)
        if isinstance(value, str) and kind in (int, float):
            try:
                value = float(value)  # YAML 1.1 reads '1e9' (no dot) as a string
            except ValueError:
                return None
    if kind is bool:
        return value if isinstance(value, bool) else None
    if kind is int:
        if isinstance(value, bool):
            return None
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # 2048.0 or 1e6 from a YAML file or the command line
        return value if isinstance(value, int) else None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return None
        return float(value)
    if kind is str:
        return value if isinstance(value, str) else None
    if kind is dict:
        return value if isinstance(value, dict) else None
    return value if isinstance(value, kind) else None


def _check_scalar(parameter: Parameter, value, original) -> None:
    allowed = parameter.allowed_values()
    if allowed is not None and value not in allowed:
        raise _fail(parameter, original)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if parameter.minimum is not None and (value <= parameter.minimum if parameter.above_minimum
                                              else value < parameter.minimum):
            raise _fail(parameter, original)
        if parameter.maximum is not None and (value >= parameter.maximum if parameter.below_maximum
                                              else value > parameter.maximum):
            raise _fail(parameter, original)


def coerce(parameter: Parameter, value) -> Any:
    """The value converted to the declared type and checked; raises ParameterError naming the parameter."""
    original = value
    if value in parameter.special and not isinstance(value, bool):
        return value
    if isinstance(value, str) and parameter.kind is not str:
        value = _parse_text(value)
        if value in parameter.special and not isinstance(value, bool):
            return value
    if value is None:
        if parameter.optional:
            return None
        raise _fail(parameter, original)
    if parameter.kind is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list) or (parameter.nonempty and not value):
            raise _fail(parameter, original)
        items = []
        for element in value:
            item = _scalar(parameter.item, element) if parameter.item else element
            if item is None:
                raise _fail(parameter, original)
            _check_scalar(parameter, item, original)
            items.append(item)
        return items
    coerced = _scalar(parameter.kind, value)
    if coerced is None:
        raise _fail(parameter, original)
    _check_scalar(parameter, coerced, original)
    return coerced


# --- the declarations ----------------------------------------------------------------------------------

_SOURCES_NOTE = "corpus:eval, corpus:calibration, wikitext2, refinedweb or a .txt path"

CHAPTER_PARAMETERS: dict[str, tuple[Parameter, ...]] = {
    "01_published_laws": (
        Parameter("TABLE1_CSV", str, "path of the paper's Table 1"),
        Parameter("FITS_DIR", str, "folder of the per-bit fit JSONs"),
        Parameter("TOLERANCE", float, "fraction", minimum=0, maximum=1, above_minimum=True, below_maximum=True),
        Parameter("FIT_SPACE", str, "residual space", allowed=("log", "linear")),
        Parameter("PROJECTION_SIZES", list, "model sizes N, parameters", item=float, minimum=0, above_minimum=True),
        Parameter("PROJECTION_BITS", list, "weight bits", item=int, minimum=2, maximum=16),
        Parameter("MAX_TOKENS", float, "training tokens", minimum=1e9, above_minimum=True),
        Parameter("VOCAB_SIZE", int, "vocabulary entries", minimum=2),
    ),
    "02_measure_qid": (
        Parameter("CHECKPOINTS", list, "model folders or hub ids; empty trains the small model", item=str, nonempty=False),
        Parameter("TRAIN_STEPS", int, "optimizer steps", minimum=1),
        Parameter("METHODS", list, "quantizers", item=str, allowed="qid.measure.quantize:METHODS"),
        Parameter("BITS", list, "weight bits", item=int, minimum=2, maximum=16),
        Parameter("GROUP_SIZE", int, "input columns per scale; -1 per output channel", minimum=1, special=(-1,)),
        Parameter("EVAL_TOKENS", int, "predicted tokens", minimum=1),
        Parameter("EVAL_SOURCE", str, _SOURCES_NOTE),
        Parameter("CALIBRATION_SAMPLES", int, "sequences", minimum=1),
        Parameter("CALIBRATION_SOURCE", str, _SOURCES_NOTE),
        Parameter("SEED", int, "seed", minimum=0),
        Parameter("DEVICE", str, "device", allowed=("cpu", "cuda", "auto")),
        Parameter("RAY_ADDRESS", str, "Ray cluster ('local', 'auto', HOST:6379, ray://HOST:10001)", optional=True),
        Parameter("OUTPUT_CSV", str, "path of the sweep table"),
        Parameter("WORK_DIR", str, "scratch folder"),
        Parameter("BENCHMARK_DIR", str, "folder of the benchmark tables"),
    ),
    "03_mini_pythia_suite": (
        Parameter("PRESET", str, "suite preset", allowed=("cpu", "tiny")),
        Parameter("SUITE_DIR", str, "folder of the suite tables"),
        Parameter("METHODS", list, "quantizers", item=str, allowed=("rtn", "gptq", "awq")),
        Parameter("BITS", list, "weight bits", item=int, allowed=(2, 3, 4, 8)),
        Parameter("MAIN_METHOD", str, "quantizer of the main figures", allowed=("rtn", "gptq", "awq")),
        Parameter("MIN_RUNG", float, "D/N from which trends are computed", minimum=0),
        Parameter("LIVE_METHODS", list, "quantizers re-measured live", item=str, allowed=("rtn", "gptq", "awq"),
                  nonempty=False),
        Parameter("LIVE_BITS", list, "weight bits re-measured live", item=int, allowed=(2, 3, 4, 8), nonempty=False),
        Parameter("LIVE_THREADS", int, "torch CPU threads", minimum=1),
        Parameter("LIVE_DIR", str, "scratch folder"),
    ),
    "08_float_formats": (
        Parameter("PRESET", str, "suite preset (its formats table, or tiny: made here)"),
        Parameter("SUITE_DIR", str, "folder of the suite tables"),
        Parameter("CONFIDENCE", float, "fraction", minimum=0.5, maximum=1, below_maximum=True),
        Parameter("MIN_RUNG", float, "D/N from which rungs are pooled", minimum=0),
        Parameter("EQUAL_STORAGE_BITS", float, "bits per weight", minimum=4, above_minimum=True),
        Parameter("BOOTSTRAP_SAMPLES", int, "replicates", minimum=10),
        Parameter("SEED", int, "seed", minimum=0),
        Parameter("LIVE_METHODS", list, "quantizers of the practitioner's qid measure", item=str,
                  allowed="qid.measure.quantize:METHODS", nonempty=False),
        Parameter("LIVE_EVAL_TOKENS", int, "predicted tokens", minimum=64),
        Parameter("LIVE_DIR", str, "scratch folder"),
    ),
    "04_fitter_validation": (
        Parameter("CHINCHILLA_CSV", str, "path of Epoch AI's extracted points", optional=True),
        Parameter("DROP_LARGEST_LOSSES", int, "points", minimum=0),
        Parameter("HUBER_DELTA", float, "log-loss units", minimum=0, above_minimum=True),
        Parameter("SCREEN_STARTS", int, "grid starts run", minimum=1, optional=True),
        Parameter("BOOTSTRAP_SAMPLES", int, "replicates", minimum=2),
        Parameter("HOLDOUT_TOP", int, "held-out sizes", minimum=1),
        Parameter("NOISE_SIGMA", float, "log units", minimum=0, maximum=1, above_minimum=True, below_maximum=True),
        Parameter("COVERAGE_REPETITIONS", int, "synthetic data sets", minimum=2),
        Parameter("COVERAGE_BOOTSTRAP", int, "replicates per data set", minimum=10),
        Parameter("CONFIDENCE", float, "fraction", minimum=0.5, maximum=1, below_maximum=True),
        Parameter("SEED", int, "seed", minimum=0),
        Parameter("SYNTHETIC_DESIGN", dict, "N, D, P -> lists of positive values"),
    ),
    "05_fits_on_our_data": (
        Parameter("QID_TABLE", str, "measured QiD table, or 'synthetic'"),
        Parameter("WINDOW_LOSSES", str, "per-window losses; None skips the window bootstrap", optional=True),
        Parameter("FITS_DIR", str, "folder of the fit JSONs; None writes nothing", optional=True),
        Parameter("METHOD", str, "quantizer of the fits", allowed=("gptq", "awq", "rtn")),
        Parameter("BITS", list, "weight bits", item=int, minimum=2, maximum=16),
        Parameter("DESIGNS", list, "schedule designs", item=str, allowed=("cosine", "wsd", "measured")),
        Parameter("PHASES", list, "checkpoint phases", item=str, allowed=("intermediate", "final", "stable", "decayed")),
        Parameter("TRAINED_ONLY", bool, "fit only checkpoints that beat the bigram baseline"),
        Parameter("EXTRA_SCATTER", bool, "also fit a relative scatter"),
        Parameter("BOOTSTRAP_SAMPLES", int, "replicates", minimum=10),
        Parameter("CONFIDENCE", float, "fraction", minimum=0.5, maximum=1, below_maximum=True),
        Parameter("SEED", int, "seed", minimum=0),
        Parameter("VOCAB_SIZE", int, "vocabulary entries", minimum=2),
        Parameter("PROJECTION_SIZES", dict, "name -> model size N, parameters"),
        Parameter("PROJECTION_BITS", list, "weight bits", item=int, minimum=2, maximum=16),
    ),
    "06_learning_rate_schedules": (
        Parameter("SIZES", list, "Luo et al.'s model sizes", item=str, allowed="qid.laws.curves:LUO_SIZES"),
        Parameter("TRAIN_SCHEDULES", list, "schedules fitted", item=str, allowed="qid.laws.schedules:LUO_SCHEDULES"),
        Parameter("TEST_SCHEDULES", list, "schedules predicted", item=str, allowed="qid.laws.schedules:LUO_SCHEDULES"),
        Parameter("LAW", str, "curve law drawn", allowed=("luo_multipower", "tissue_annealing")),
        Parameter("FIT_SCREEN", int, "starts run to convergence", minimum=1),
        Parameter("FITS_DIR", str, "folder of the fit JSONs; None writes nothing", optional=True),
        Parameter("SUITE_TRAIN_LOG", str, "path of the suite's training log"),
        Parameter("SUITE_QID_TABLE", str, "path of the suite's QiD table"),
        Parameter("SUITE_LOSS_COLUMN", str, "loss column of the suite's curves", allowed=("train_loss", "eval_loss")),
        Parameter("ANNEALING_DECAY", float, "momentum λ", minimum=0, maximum=1, above_minimum=True, below_maximum=True),
        Parameter("QID_METHODS", list, "quantizers", item=str, allowed=("rtn", "gptq", "awq")),
        Parameter("QID_BITS", list, "weight bits", item=int, minimum=2, maximum=16),
        Parameter("MIN_RUNG", float, "D/N from which decay branches are compared", minimum=0),
        Parameter("BOOTSTRAP_SAMPLES", int, "replicates", minimum=100),
        Parameter("CONFIDENCE", float, "fraction", minimum=0.5, maximum=1, below_maximum=True),
        Parameter("SEED", int, "seed", minimum=0),
    ),
    "07_training_precision": (
        Parameter("GRID_TABLE", str, "path of the grid table (one row per training run)"),
        Parameter("PTQ_TABLE", str, "path of the post-training quantization table"),
        Parameter("PROVENANCE", str, "path of the grid's provenance JSON"),
        Parameter("BOOTSTRAP_SAMPLES", int, "bootstrap replicates", minimum=0),
        Parameter("CONFIDENCE", float, "fraction", minimum=0.5, maximum=1, below_maximum=True),
        Parameter("SEED", int, "seed", minimum=0),
        Parameter("FIT_STARTS", int, "random starts of each fit", minimum=1),
        Parameter("PTQ_METHOD", str, "post-training quantizer", allowed=("rtn", "gptq")),
        Parameter("PRECISIONS", list, "training precisions scanned for P*, bits", item=float, minimum=1, maximum=32),
    ),
}

# Checks that involve more than one value's type, by chapter: (description, predicate on the coerced values).
_EXTRA_CHECKS: dict[str, tuple[tuple[str, str, Callable[[dict], bool]], ...]] = {
    "04_fitter_validation": (
        ("SYNTHETIC_DESIGN", "a mapping with exactly the keys N, D and P, each a non-empty list of positive numbers",
         lambda values: set(values["SYNTHETIC_DESIGN"]) == {"N", "D", "P"} and all(
             isinstance(items, list) and items and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                                       for v in items)
             for items in values["SYNTHETIC_DESIGN"].values())),
    ),
    "05_fits_on_our_data": (
        ("PROJECTION_SIZES", "a non-empty mapping of names to positive model sizes",
         lambda values: bool(values["PROJECTION_SIZES"]) and all(
             isinstance(size, (int, float)) and not isinstance(size, bool) and math.isfinite(size) and size > 0
             for size in values["PROJECTION_SIZES"].values())),
    ),
}


def declared(chapter: str) -> tuple[Parameter, ...] | None:
    return CHAPTER_PARAMETERS.get(chapter)


def declare(chapter: str, *parameters: Parameter) -> None:
    """Register a chapter's declaration from elsewhere in the package (one call per chapter)."""
    CHAPTER_PARAMETERS[chapter] = tuple(parameters)


def coerce_parameters(chapter: str, values: dict, complete: bool = False) -> dict:
    """Coerce and check `values` (name -> value) against the chapter's declaration; returns the coerced dict.

    With `complete`, every declared parameter must be present (the whole parameters cell); otherwise only the
    given ones are checked (overrides from the command line). Unknown names are an error either way.
    """
    parameters = CHAPTER_PARAMETERS.get(chapter)
    if parameters is None:
        return dict(values)
    by_name = {parameter.name: parameter for parameter in parameters}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ParameterError(f"chapter {chapter} has no parameter(s) {', '.join(unknown)}; "
                             f"its parameters: {', '.join(by_name)}")
    if complete:
        missing = [name for name in by_name if name not in values]
        if missing:
            raise ParameterError(f"chapter {chapter}: parameter(s) {', '.join(missing)} are declared but not set")
    coerced = {name: coerce(by_name[name], value) for name, value in values.items()}
    if complete:
        for name, description, check in _EXTRA_CHECKS.get(chapter, ()):
            if not check(coerced):
                raise ParameterError(f"parameter {name} must be {description}, got {coerced[name]!r}")
    return coerced


def apply_chapter_parameters(chapter: str, namespace: dict) -> None:
    """The chapter's one-line check: coerce its declared parameters in `namespace` (its globals()) in place.

    Raises ParameterError naming the first parameter that does not fit. Returns nothing, so the cell that
    calls it prints nothing.
    """
    parameters = CHAPTER_PARAMETERS.get(chapter)
    if parameters is None:
        raise ParameterError(f"chapter {chapter} declares no parameters in qid.chapters.params")
    present = {parameter.name: namespace[parameter.name] for parameter in parameters if parameter.name in namespace}
    coerced = coerce_parameters(chapter, present, complete=False)
    missing = [parameter.name for parameter in parameters if parameter.name not in namespace]
    if missing:
        raise ParameterError(f"chapter {chapter}: parameter(s) {', '.join(missing)} are declared but not set")
    for name, description, check in _EXTRA_CHECKS.get(chapter, ()):
        if not check(coerced):
            raise ParameterError(f"parameter {name} must be {description}, got {coerced[name]!r}")
    namespace.update(coerced)


def parameter_table(chapter: str) -> list[dict]:
    """The declaration as rows (name, type, allowed, unit), for documentation."""
    rows = []
    for parameter in CHAPTER_PARAMETERS.get(chapter, ()):
        rows.append({"name": parameter.name, "accepts": parameter.describe()})
    return rows


__all__ = ["Parameter", "ParameterError", "CHAPTER_PARAMETERS", "apply_chapter_parameters", "coerce_parameters",
           "coerce", "declare", "declared", "parameter_table"]
