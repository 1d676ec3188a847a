"""`qid laws`, `qid predict` and `qid tokens-for-qid`: the law registry and predictions from a parameter set or a fit."""

from __future__ import annotations

import sys

from qid.cli.arguments import CliError, positive_number, print_json
from qid.laws import registry as law_registry

# One line per command for `qid --help`, declared apart from the arguments: `qid` builds only the parser of
# the command it runs (qid.cli.build_parser), so the others cost no imports.
HELP = {
    "laws": "list every registered law, its formula, parameters and parameter sets",
    "predict": "evaluate a law at given N, D, P",
    "tokens-for-qid": "training tokens at which a QiD law reaches a threshold",
}


# --- laws ---------------------------------------------------------------------------------------------


def add_laws(subparsers) -> None:
    parser = subparsers.add_parser("laws", help=HELP["laws"])
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
        print_json(listing)
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


# N is in the units of the parameter set it meets: Ouyang et al.'s Table 1 is reproduced only with nominal sizes
# (chapter 01), while `qid measure` and the book's fits count non-embedding parameters.
N_HELP = ("model size in the units of --params: the nominal size (7e9 for a 7B model) for the published Ouyang sets, "
          "non-embedding parameters for a fit of a `qid measure` table or of the book's suite")


def _add_law_arguments(parser, variables: str) -> None:
    parser.add_argument("--law", required=True, help="law name (see `qid laws`)")
    parser.add_argument("--params", default="published", help="parameter-set name or path to a fit JSON (default: published)")
    for name in variables:
        description = N_HELP if name == "N" else law_registry.VARIABLE_DESCRIPTIONS[name]
        parser.add_argument(f"--{name}", type=positive_number(f"--{name}"), help=description)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_predict(subparsers) -> None:
    parser = subparsers.add_parser("predict", help=HELP["predict"])
    _add_law_arguments(parser, "NDP")
    parser.set_defaults(handler=_run_predict)


def _run_predict(args) -> int:
    from qid.fitting import prediction

    law = law_registry.get_law(args.law)
    if not set(law.variables) <= set("NDP"):  # a loss-curve law (qid.laws.curves) needs a whole schedule
        raise CliError(f"law {law.name} predicts a loss curve from a per-step learning-rate schedule; "
                       "evaluate it from Python (qid.laws.registry.get_law) or fit it with `qid fit` on a curve table")
    inputs = {name: getattr(args, name) for name in law.variables}
    missing = [f"--{name}" for name, value in inputs.items() if value is None]
    if missing:
        raise CliError(f"law {law.name} needs {', '.join(missing)} ({law.describe_variables(n.lstrip('-') for n in missing)})")
    _print_answer(prediction.predict(law, args.params, inputs), args.json)
    return 0


def _print_answer(answer, as_json: bool) -> None:
    """The value with unit and interval on stdout (or all of it as JSON); warnings on stderr either way."""
    if as_json:
        print_json(answer.as_json())
    else:
        print(answer.as_text())
    for warning in answer.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def add_tokens_for_qid(subparsers) -> None:
    parser = subparsers.add_parser("tokens-for-qid", help=HELP["tokens-for-qid"])
    _add_law_arguments(parser, "NP")
    parser.add_argument("--qid", type=positive_number("--qid"), required=True, help="QiD threshold (nats)")
    parser.set_defaults(handler=_run_tokens_for_qid)


def _run_tokens_for_qid(args) -> int:
    from qid.fitting import prediction

    law = law_registry.get_law(args.law)
    if not set(law.variables) <= set("NDP"):  # a loss-curve law has no N, P or QiD to solve for
        raise CliError(f"law {law.name} predicts a loss curve from a per-step learning-rate schedule, not QiD; "
                       "tokens-for-qid needs a QiD law of N, D and P (see `qid laws`)")
    needed = [name for name in law.variables if name != "D"]
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if missing:
        raise CliError(f"law {law.name} needs {', '.join(missing)} ({law.describe_variables(n.lstrip('-') for n in missing)})")
    _print_answer(prediction.tokens_for_qid(law, args.params, args.qid, N=args.N, P=args.P), args.json)
    return 0
