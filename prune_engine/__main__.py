"""`python -m prune_engine` runs the `prunescope` command line."""

import sys

from .cli import main

sys.exit(main())
