"""A scaling law as the book handles it: a plain function with named parameters, its published parameter sets,
and the registry every law is entered in once (`register_law`, `get_law`).

A law maps its variables (some of N = non-embedding parameters, D = training tokens, P = weight bits, ...) and
named parameters to a predicted quantity (QiD in nats, or a loss in nats). Published parameter sets are
attached to the law as data, each with its source and how sure we are of it. lmfit wraps these functions
directly (`qid.fitting.fit`), so a parameter's name here is its name in every fit report and JSON file.

The laws themselves are defined in `qid.laws.quantization_laws` and `qid.laws.training_laws`; import
`qid.laws.registry`, which loads both, to find them all.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

VARIABLE_NAMES = ("N", "D", "P", "lr", "step", "exponent_bits", "mantissa_bits", "block_size",
                  "P_w", "P_a", "P_kv", "P_post")
VARIABLE_DESCRIPTIONS = {
    "N": "non-embedding parameters",
    "D": "training tokens",
    "P": "weight bit width (bits)",
    # curve laws (qid.laws.curves): the loss along one run as a function of its learning-rate schedule
    "lr": "learning rate of every optimizer step 0..T-1 of one run",
    "step": "optimizer steps at which the loss is predicted",
    # floating-point formats (Sun et al. 2025): the element's exponent and mantissa bits, the scale's block length
    "exponent_bits": "exponent bits E of a floating-point element format",
    "mantissa_bits": "mantissa bits M of a floating-point element format",
    "block_size": "values sharing one scaling factor (block length B)",
    # training precision (Kumar et al. 2024; qid.suite.qat_grid, chapter 07)
    "P_w": "training precision of the weights (bits; 16 = not quantized)",
    "P_a": "training precision of the activations (bits; 16 = not quantized)",
    "P_kv": "training precision of the KV cache (bits; 16 = not quantized)",
    "P_post": "bits of the post-training (weight) quantization (16 = none)",
}


# --- the registry ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSet:
    """Named values for all of a law's parameters, with where they come from.

    status: 'published' (printed in the source), 'derived' (computed from published numbers) or 'fitted'
    (fitted by this book); `note` says anything a reader must know (e.g. a value whose label is garbled).
    """

    values: dict[str, float]
    source: str
    status: str = "published"
    note: str = ""


@dataclass
class Law:
    name: str
    function: Callable
    response: str  # the CSV column the law predicts: 'qid' or 'loss'
    formula: str  # plain-text equation, for the CLI
    latex: str  # the same equation in LaTeX, for the book
    source: str  # bibliography key / citation
    parameter_sets: dict[str, ParameterSet] = field(default_factory=dict)
    # Default bounds for fitting: {param: (min, max)}; None means unbounded on that side. Exponents of the QiD laws
    # are bounded symmetrically about zero, so that no bound hides the sign of an effect.
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def variables(self) -> tuple[str, ...]:
        """The law's inputs among N, D, P, in the order of the function signature."""
        names = inspect.signature(self.function).parameters
        return tuple(name for name in names if name in VARIABLE_NAMES)

    @property
    def parameters(self) -> tuple[str, ...]:
        names = inspect.signature(self.function).parameters
        return tuple(name for name in names if name not in VARIABLE_NAMES)

    def __call__(self, params: dict[str, float], **variables):
        """Evaluate the law: `law(params, N=..., D=..., P=...)`; extra variables the law does not use are ignored."""
        missing = [name for name in self.variables if name not in variables or variables[name] is None]
        if missing:
            raise ValueError(f"law {self.name} needs {', '.join(missing)} ({self.describe_variables(missing)})")
        missing_params = [name for name in self.parameters if name not in params]
        if missing_params:
            raise ValueError(f"law {self.name}: parameter set lacks {', '.join(missing_params)}")
        inputs = {name: np.asarray(variables[name], dtype=float) for name in self.variables}
        values = {name: float(params[name]) for name in self.parameters}
        return self.function(**inputs, **values)

    @staticmethod
    def describe_variables(names) -> str:
        return "; ".join(f"{name} = {VARIABLE_DESCRIPTIONS[name]}" for name in names)

    def parameter_set(self, name: str) -> ParameterSet:
        if name not in self.parameter_sets:
            known = ", ".join(self.parameter_sets) or "none"
            raise KeyError(f"law {self.name} has no parameter set {name!r}; known sets: {known} (or give a fit JSON path)")
        return self.parameter_sets[name]


LAWS: dict[str, Law] = {}


def register_law(law: Law) -> Law:
    """Add a law to the registry (replacing one of the same name: a notebook may redefine its own law)."""
    unknown_bounds = set(law.bounds) - set(law.parameters)
    if unknown_bounds:
        raise ValueError(f"law {law.name}: bounds given for unknown parameter(s) {sorted(unknown_bounds)}")
    for set_name, parameter_set in law.parameter_sets.items():
        if set(parameter_set.values) != set(law.parameters):
            raise ValueError(
                f"law {law.name}: parameter set {set_name!r} has {sorted(parameter_set.values)}, "
                f"expected {sorted(law.parameters)}"
            )
    LAWS[law.name] = law
    return law


def get_law(name: str) -> Law:
    if name not in LAWS:
        raise KeyError(f"unknown law {name!r}; registered laws: {', '.join(sorted(LAWS))}")
    return LAWS[name]
