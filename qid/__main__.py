import sys

try:
    from qid.cli import main
except KeyboardInterrupt:  # Ctrl-C while the package imports: nothing has run yet
    print("\nqid: interrupted before any work; nothing was written", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
