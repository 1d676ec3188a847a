"""Running the `qid` command line inside a test: exit status, stdout and stderr, argparse exits included."""

import os
import signal
import subprocess
import sys

from qid.cli import main


def run(capsys, *argv):
    try:
        status = main([str(item) for item in argv])
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def start_measure_child(model_folder, output) -> subprocess.Popen:
    """`qid measure` as a child process that a test may interrupt with SIGINT (a user's Ctrl-C): a few RTN and GPTQ
    cells on `model_folder`, rows appended to `output`, SIGINT at its default so the child sees what a shell sends."""
    command = [sys.executable, "-m", "qid", "measure", "--checkpoints", str(model_folder), "--methods", "rtn", "gptq",
               "--bits", "2", "3", "4", "8", "--eval-tokens", "620", "--calibration-samples", "4", "--device", "cpu",
               "--no-progress", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
