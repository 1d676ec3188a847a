"""The registry of scaling laws: every law the book knows, and parameter sets read from fit files.

Importing this module loads every law (`qid.laws.quantization_laws`, `qid.laws.training_laws`) into the registry
of `qid.laws.law`; `get_law(name)` finds one, `LAWS` holds them all. The published constants are re-exported here,
so `from qid.laws.registry import get_law, KUMAR_PRECISION_GAMMAS` works as before. Readers may register their own
law in a notebook with `register_law(Law(...))`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from qid.laws.law import (  # noqa: F401  (re-exported: the registry's public names)
    LAWS, VARIABLE_DESCRIPTIONS, VARIABLE_NAMES, Law, ParameterSet, get_law, register_law)
from qid.laws.quantization_laws import (  # noqa: F401
    CURVATURE_REFERENCE_TOKENS, OUYANG_SEPARATE_EXPONENTS, OUYANG_UNIFIED_PUBLISHED, chinchilla, curved_unified,
    kumar_ptq, ouyang_per_bit, ouyang_separate_D, ouyang_separate_N, ouyang_separate_P, ouyang_unified, pythia_loss16)
from qid.laws.training_laws import (  # noqa: F401
    KUMAR_BASE_PUBLISHED, KUMAR_PRECISION_GAMMAS, KUMAR_PTQ_PUBLISHED, SUN_FP_PUBLISHED, kumar_effective_parameters,
    kumar_precision, sun_fp_training)

# --- parameter sets from fits ---------------------------------------------------------------------------


def read_fit_file(path: str | Path) -> dict:
    """The content of a fit JSON written by the book (`{"law": ..., "params": {...}, ...}`), checked for those keys."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such fit file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(content, dict) or "law" not in content or "params" not in content:
        raise ValueError(f"{path}: not a fit file (needs keys 'law' and 'params')")
    return content


def load_fit_parameters(path: str | Path, law_name: str | None = None) -> tuple[str, dict[str, float]]:
    """Read a fit JSON written by the book and return (law, params).

    If `law_name` is given, the file must hold a fit of that law.
    """
    content = read_fit_file(path)
    if law_name is not None and content["law"] != law_name:
        raise ValueError(f"{path}: holds a fit of law {content['law']!r}, not {law_name!r}")
    law = get_law(content["law"])
    params = {name: float(value) for name, value in content["params"].items()}
    missing = set(law.parameters) - set(params)
    if missing:
        raise ValueError(f"{path}: parameters {sorted(missing)} of law {law.name} are missing")
    return law.name, params


def resolve_parameters(law: Law, params: str) -> dict[str, float]:
    """`params` is a parameter-set name attached to the law, or the path of a fit JSON of that law."""
    if params in law.parameter_sets:
        return dict(law.parameter_sets[params].values)
    if params.endswith(".json") or Path(params).exists():
        return load_fit_parameters(params, law.name)[1]
    law.parameter_set(params)  # raises KeyError listing the known sets
    raise AssertionError("unreachable")
