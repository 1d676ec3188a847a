"""Fitting laws to data: the public API in one place (a façade over the modules that do the work).

- `qid.fitting.problem`: the problem (data checks, bounds, residuals, objective, known per-row errors);
- `qid.fitting.starts`: start grids and lmfit Parameters built from a law;
- `qid.fitting.optimize`: `fit_law` (multi-start L-BFGS-B search, lmfit polish, standard errors, hold-outs);
- `qid.fitting.bootstrap`: bootstrap intervals (by point, or by cluster: training run, size);
- `qid.fitting.record`: `FitResult`, saved as JSON atomically and read back by `load_fit`;
- `qid.laws.chinchilla`: Epoch AI's Chinchilla points and the published results of Hoffmann et al.'s procedure;
- `qid.fitting.recovery`: synthetic data from known parameters and interval-coverage experiments.

Argument parsing of `qid fit` lives in `qid.cli`.
"""

from qid.laws.chinchilla import (
    EPOCH_BOOTSTRAP_STDERR,
    EPOCH_CHINCHILLA_FILE,
    EPOCH_DROPPED_LARGEST_LOSSES,
    HOFFMANN_OPTIONS,
    HOFFMANN_PROCEDURE_ON_EPOCH_DATA,
    load_epoch_chinchilla,
)
from qid.fitting.record import FitResult, jsonable, load_fit
from qid.fitting.problem import (
    DEFAULT_CONFIDENCE,
    DEFAULT_DELTA,
    DISTINCT_TOLERANCE,
    GRADIENTS,
    LOSSES,
    SPACES,
    FitError,
    Problem,
    build_problem,
    default_log_parameters,
    huber,
    objective_description,
    objective_value,
    prepare_data,
    register_gradient,
    resolve_bounds,
)
from qid.fitting.optimize import extrapolation_error, fit_law, single_threaded_blas
from qid.common.paths import SHARED_REFERENCE_DIR
from qid.common.provenance import file_sha256
from qid.fitting.recovery import coverage_experiment, synthetic_table
from qid.fitting.starts import START_GRIDS, make_parameters, start_grid, starting_points

_build_problem = build_problem  # the name tests and notebooks used before the split

__all__ = [
    "DEFAULT_CONFIDENCE", "DEFAULT_DELTA", "DISTINCT_TOLERANCE", "EPOCH_BOOTSTRAP_STDERR", "EPOCH_CHINCHILLA_FILE",
    "EPOCH_DROPPED_LARGEST_LOSSES", "GRADIENTS", "HOFFMANN_OPTIONS", "HOFFMANN_PROCEDURE_ON_EPOCH_DATA", "LOSSES",
    "SHARED_REFERENCE_DIR", "SPACES", "START_GRIDS", "FitError", "FitResult", "Problem", "build_problem",
    "coverage_experiment", "default_log_parameters", "extrapolation_error", "file_sha256", "fit_law", "huber",
    "jsonable", "load_epoch_chinchilla", "load_fit", "make_parameters", "objective_description", "objective_value",
    "prepare_data", "register_gradient", "resolve_bounds", "single_threaded_blas", "start_grid", "starting_points", "synthetic_table",
]
