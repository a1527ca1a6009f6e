"""``python -m elman``: the command line (see :mod:`elman.cli`)."""

from .cli import main

raise SystemExit(main())
