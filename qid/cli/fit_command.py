"""`qid fit`: fit a registered law to a table (QiD rows or loss curves) and save the fit record."""

from __future__ import annotations

import argparse
import math
import sys

from qid.cli.arguments import CliError, positive_number, print_json
from qid.laws import registry as law_registry

# One line per command for `qid --help`, declared apart from the arguments: `qid` builds only the parser of
# the command it runs (qid.cli.build_parser), so the others cost no imports.
HELP = {
    "fit": "fit a law to a CSV with lmfit: several starts, least squares or Huber, bootstrap",
}


# --- fit (qid.fitting.fit) -------------------------------------------------------------------------------------

EXIT_NOT_CONVERGED = 1  # the fit ran but did not converge (bad inputs exit 2, as every qid command)
EXIT_UNIDENTIFIED = 3  # the fit converged but the data do not determine its parameters (see --accept-unidentified)


def _starts_argument(text: str):
    """argparse type of --starts: 'grid' or a positive number of random starts."""
    if text == "grid":
        return "grid"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"--starts must be 'grid' or a positive number of random starts, got {text!r}")
    return count


def _count_argument(name: str, minimum: int):
    """argparse type: an integer >= minimum, with a message naming the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        return value

    return parse


def _parse_fixed(items: list[str]) -> dict[str, float]:
    fixed = {}
    for item in items:
        name, separator, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not separator or not name or not math.isfinite(value):
            raise CliError(f"--fix expects NAME=VALUE with a finite number, got {item!r}")
        fixed[name.strip()] = value
    return fixed


def add_fit(subparsers) -> None:
    from qid.fitting.problem import DEFAULT_CONFIDENCE, DEFAULT_DELTA, LOSSES, SPACES

    parser = subparsers.add_parser("fit", help=HELP["fit"])
    parser.add_argument("--law", required=True, help="law name (see `qid laws`)")
    parser.add_argument("--data", required=True, help="CSV with the law's variables (N, D, P) and its response (qid or loss) as columns")
    parser.add_argument("--loss", choices=LOSSES, default="least_squares", help="objective (default least_squares; huber sums Huber_delta)")
    parser.add_argument("--delta", type=positive_number("--delta"), default=DEFAULT_DELTA, help="Huber threshold, in residual units (default 1e-3)")
    parser.add_argument("--space", choices=SPACES, default=None,
                        help="residuals y - fit (default with --errors: keeps zero and negative QiD) or log y - log fit (default without)")
    parser.add_argument("--errors", default=None, metavar="COLUMN",
                        help="column of standard errors of the response; residuals are divided by them (default: qid_se "
                             "for a QiD law when the table has it; 'none' for an unweighted fit)")
    parser.add_argument("--extra-scatter", action="store_true",
                        help="with --errors: also fit a relative scatter beyond the known errors (maximum likelihood)")
    parser.add_argument("--clusters", default=None, metavar="COLUMN",
                        help="bootstrap whole clusters (e.g. run: every row of a training run together) instead of rows")
    parser.add_argument("--method", default=None, help="use only rows of this quantizer (a measured table's method column)")
    parser.add_argument("--where", default=None, metavar="QUERY",
                        help="use only rows where this pandas query holds, e.g. \"design == 'cosine' and bits < 8\"")
    parser.add_argument("--accept-unidentified", action="store_true",
                        help="exit 0 even when the data do not determine every parameter (the JSON still says so)")
    parser.add_argument("--starts", type=_starts_argument, default="grid", help="'grid' (the law's start grid, default) or N seeded random starts")
    parser.add_argument("--screen", type=_count_argument("--screen", 1), default=None, help="run L-BFGS only from the K starts with the lowest objective")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE", help="hold a parameter fixed (repeatable)")
    parser.add_argument("--bootstrap", type=_count_argument("--bootstrap", 0), default=0, help="bootstrap replicates for intervals (default 0: none)")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="interval coverage (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random starts and bootstrap (default 0)")
    parser.add_argument("--holdout", action="append", choices=("N", "D", "P"), default=[],
                        help="also report the extrapolation error with the largest value of this variable held out (repeatable)")
    parser.add_argument("--max-iterations", type=_count_argument("--max-iterations", 1), default=None,
                        help="cap on L-BFGS iterations per start and on lmfit's evaluations (default: none)")
    parser.add_argument("--out", default=None, help="write the fit as JSON here (loadable by --params PATH and qid.fitting.fit.load_fit)")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON (without the bootstrap samples)")
    parser.add_argument("--lmfit-report", action="store_true",
                        help="print lmfit's full fit report instead of the short parameter table")
    parser.set_defaults(handler=_run_fit)


def parameter_lines(result) -> list[str]:
    """The fitted parameters as a short table: value, standard error and the bootstrap interval where there is one
    (lmfit's full report is `--lmfit-report`)."""
    intervals = result.intervals or {}
    label = f"{100 * result.confidence:g}% bootstrap interval" if any(intervals.values()) else ""
    lines = [f"{'parameter':<12} {'value':>12} {'std. error':>12}  {label}".rstrip()]
    for name, value in result.params.items():
        stderr = (result.stderr or {}).get(name)
        interval = intervals.get(name)
        shown_error = ("(fixed)" if name in (result.fixed or {}) else
                       f"{stderr:.2g}" if stderr is not None and math.isfinite(stderr) and stderr > 0
                       and result.identified else "–")  # an undetermined parameter never shows an error of 0
        shown_interval = f"[{interval[0]:.4g}, {interval[1]:.4g}]" if interval else ""
        lines.append(f"{name:<12} {value:>12.5g} {shown_error:>12}  {shown_interval}".rstrip())
    lines += [f"{name:<12} {value:>12.5g} {'(fixed)':>12}" for name, value in (result.fixed or {}).items()
              if name not in result.params]
    return lines


def _run_fit(args) -> int:
    """Handler of `qid fit`: exit 0 on a converged, identified fit; 1 when it did not converge; 3 when its
    parameters are not identified (unless --accept-unidentified); input errors raise (exit 2)."""
    from qid.fitting.fit import FitError, fit_law
    from qid.fitting.data import default_errors, law_table
    from qid.common.provenance import file_sha256
    from qid.common.csvtables import load_table

    if not 0 < args.confidence < 1:
        raise CliError(f"--confidence must be between 0 and 1, got {args.confidence}")
    law = law_registry.get_law(args.law)
    if args.out:  # before the fit: a mistyped --out (a folder, a model file) fails at once and stays untouched
        from qid.common.outputs import check_replaceable, is_fit_json

        check_replaceable(args.out, is_fit_json, "fit JSON", option="--out")
    raw = load_table(args.data)
    raw.attrs.update(source=str(args.data), sha256=file_sha256(args.data))
    table = law_table(raw, law, method=args.method, where=args.where)
    # The file itself when it is fitted as it is (its path and hash recorded), else the filtered table.
    data = args.data if len(table) == len(raw) and list(table.columns) == list(raw.columns) else table
    errors = default_errors(table, law) if args.errors is None else (None if args.errors == "none" else args.errors)
    if errors and errors not in table.columns:
        raise CliError(f"{args.data}: --errors {errors}: no such column")
    if args.extra_scatter and not errors:
        raise CliError("--extra-scatter needs per-row errors (--errors COLUMN)")
    space = args.space or ("linear" if errors else "log")
    try:
        result = fit_law(
            law, data, loss=args.loss, delta=args.delta, space=space, starts=args.starts,
            screen=args.screen, fixed=_parse_fixed(args.fix), bootstrap=args.bootstrap, seed=args.seed,
            confidence=args.confidence, holdout=tuple(dict.fromkeys(args.holdout)), max_iterations=args.max_iterations,
            keep_table=False, errors=errors, extra_scatter=args.extra_scatter, clusters=args.clusters,
        )
        failure = None
    except FitError as error:
        if error.result is None:
            raise CliError(str(error)) from None
        result, failure = error.result, str(error)
    # An unidentified fit is kept out of --out unless asked for: predict and tokens-for-qid would use it as a fit
    refused = failure is None and not result.identified and not args.accept_unidentified
    if args.out and not refused:
        result.save(args.out)
    if args.json:
        content = result.to_dict(include_samples=False)
        if args.out and not refused:
            content["saved_to"] = str(args.out)
        print_json(content)
    else:
        if args.lmfit_report:
            from qid.fitting.report_text import fit_report_text  # never an undetermined parameter with error 0

            print(fit_report_text(result))
        else:
            print("\n".join(parameter_lines(result)))
        print(f"objective ({result.objective_name}) = {result.objective:.8g}; {result.n_points} points; converged: {result.converged}")
        for variable, error in (result.extrapolation or {}).items():
            print(f"  largest {variable} held out ({error['n_test']} points): rms log error {error['rms_log_error']:.4g}")
        if errors:
            scatter = f"; extra relative scatter {result.extra_scatter:.4g}" if result.extra_scatter is not None else ""
            print(f"  errors from column {errors} ({space} residuals / SE){scatter}; AICc {result.aicc:.6g}")
        if args.out and not refused:
            print(f"saved to {args.out}")
    if failure:
        print(f"qid fit: {failure}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    if not result.identified:
        for reason in result.identification:
            print(f"qid fit: not identified: {reason}", file=sys.stderr)
        if not args.accept_unidentified:
            if args.out:
                print(f"qid fit: {args.out} not written (the fit is not identified; --accept-unidentified writes it, marked)",
                      file=sys.stderr)
            return EXIT_UNIDENTIFIED
    return 0
