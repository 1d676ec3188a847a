"""What every `qid` command shares: the one-line error type, the parser class, argument types, common options."""

from __future__ import annotations

import argparse
import json
import math

EXIT_USAGE = 2


class CliError(Exception):
    """An error caused by the command line's inputs; printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
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


def print_json(payload) -> None:
    print(json.dumps(payload, indent=2, sort_keys=False))


RAY_HELP = ("run on a Ray cluster, one task per checkpoint (GPU each when the cluster has GPUs): no ADDRESS starts "
            "one on this machine; 'auto' joins the cluster started here with `ray start`; HOST:6379 or "
            "ray://HOST:10001 joins a remote one")


def add_ray_argument(parser) -> None:
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help=RAY_HELP)


def set_threads(threads) -> None:
    if threads is not None:
        if threads < 1:
            raise CliError(f"--threads must be ≥ 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def silence_progress_bars() -> None:
    """--no-progress: besides qid's own bars, every library's (transformers' weight loading, huggingface_hub's
    downloads, datasets' and any other tqdm bar), for logs and CI where a bar is only noise."""
    import os

    os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 takes its defaults from TQDM_* variables: every bar off
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
