"""`python -m crossrank.cli`."""

from crossrank.cli import main

raise SystemExit(main())
