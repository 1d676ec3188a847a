import signal
import sys

try:
    from qid.cli import main
except KeyboardInterrupt:  # Ctrl-C while the package imports: nothing has run yet
    print("\nqid: interrupted before any work; nothing was written", file=sys.stderr)
    raise SystemExit(130) from None

status = main()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is done: a late Ctrl-C must not change its exit status
raise SystemExit(status)
