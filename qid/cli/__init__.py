"""Command-line entry point: `python -m qid COMMAND ...` (installed as `qid`).

Each subcommand is one `add_<command>(subparsers)` function that declares its arguments and sets
`handler`; handlers call package functions and print. The commands live by group: `law_commands` (laws,
predict, tokens-for-qid), `measure_commands` (measure, train-suite, measure-suite, corpus), `fit_command`
(fit); `arguments` holds what they share. Any error a user can cause (unknown law, bad file,
non-positive input) becomes one line on stderr and exit status 2.

The command line sits on top: it may import every wing, and nothing imports it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from qid.cli import fit_command, law_commands, measure_commands
from qid.cli.arguments import EXIT_USAGE, CliError, Parser, silence_progress_bars
from qid.common.csvtables import DataError

# name -> (function declaring its arguments, module holding its one-line help), in `qid --help` order
COMMANDS = {
    "laws": (law_commands.add_laws, law_commands), "predict": (law_commands.add_predict, law_commands),
    "tokens-for-qid": (law_commands.add_tokens_for_qid, law_commands),
    "train-suite": (measure_commands.add_train_suite, measure_commands),
    "measure-suite": (measure_commands.add_measure_suite, measure_commands),
    "corpus": (measure_commands.add_corpus, measure_commands), "measure": (measure_commands.add_measure, measure_commands),
    "fit": (fit_command.add_fit, fit_command),
}


class CommandParser(Parser):
    """The top-level parser. Declaring a command's arguments imports what their help and defaults name (torch for
    `measure`, scipy for `fit`), so only the command being run is declared in full; the others are one help line.
    `qid laws` and `qid predict` therefore answer without importing torch (benchmarks/bench_cli.py)."""

    declared: str | None = None

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        command = next((arg for arg in args if not arg.startswith("-")), None)
        if command in COMMANDS and command != self.declared:
            return build_parser(command).parse_known_args(args, namespace)
        return super().parse_known_args(args, namespace)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `qid` parser with `command`'s arguments declared (every command's once it is parsed: see CommandParser)."""
    parser = CommandParser(prog="qid", description=__doc__.splitlines()[0])
    parser.declared = command
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, (add_command, module) in COMMANDS.items():
        if name == command:
            add_command(subparsers)
        else:
            subparsers.add_parser(name, help=module.HELP[name])
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


def _interrupt_once(signum, frame):
    """SIGINT handler: the first Ctrl-C raises KeyboardInterrupt; later ones are ignored, so a second press while
    the first is being handled (or while the process exits) cannot end it by the signal instead of exit 130."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure a user can cause (bad input, unreadable or unwritable files, a full disk)
    is one line on stderr and exit status 2; Ctrl-C says what was saved and exits 130. Anything else is a bug
    and keeps its traceback."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupt_once) if in_main_thread else None
    try:
        return _run(argv)
    except KeyboardInterrupt:  # between the handlers below (a Ctrl-C while one of them prints)
        return EXIT_INTERRUPTED
    finally:
        if in_main_thread and signal.getsignal(signal.SIGINT) is _interrupt_once:
            signal.signal(signal.SIGINT, previous)


def _run(argv: list[str] | None) -> int:
    try:
        parser = build_parser()  # `measure` and the suite commands import torch: seconds in which Ctrl-C is common
        args = parser.parse_args(argv)  # argparse itself prints one usage error and exits 2
    except KeyboardInterrupt:
        print("\nqid: interrupted before any work; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if getattr(args, "no_progress", False):
        silence_progress_bars()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"\nqid {args.command}: interrupted; {_saved_on_interrupt(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CliError, DataError, KeyError, ValueError, OSError) as error:
        print(f"qid {args.command}: error: {_error_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as error:
        from qid.common.raycluster import DistributedSweepError  # raised only under --ray

        if not isinstance(error, DistributedSweepError):
            raise
        print(f"qid {args.command}: error: {error}", file=sys.stderr)  # names every failed checkpoint: not cut
        return EXIT_TASKS_FAILED
