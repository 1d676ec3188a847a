"""Running the `qid` command line inside a test: exit status, stdout and stderr, argparse exits included."""

from qid.cli import main


def run(capsys, *argv):
    try:
        status = main([str(item) for item in argv])
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err
