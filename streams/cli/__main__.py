"""`python -m vocflow.streams.cli`: what child processes run (no PATH lookup)."""

import os

from vocflow.streams.cli import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
main()
