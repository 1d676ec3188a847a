from qid.cli import main

raise SystemExit(main())
