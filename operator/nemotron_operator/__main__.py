"""Allows ``python -m nemotron_operator``; the same as the ``nemotron-operator`` script."""

from nemotron_operator.cli import main

raise SystemExit(main())
