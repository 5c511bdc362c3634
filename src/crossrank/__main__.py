"""`python -m crossrank`: the `crossrank` command, for environments without its script."""

from crossrank.cli import main

raise SystemExit(main())
