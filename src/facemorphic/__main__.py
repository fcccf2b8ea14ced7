"""``python -m facemorphic``: the same command as ``facemorphic`` (used by the Snakemake rules)."""

import sys

from .cli import main

sys.exit(main())
