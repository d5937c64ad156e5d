"""``python -m shiftlpips_jax.cli ...``: the same as the ``shiftlpips`` console script."""

import sys

from shiftlpips_jax.cli import main

sys.exit(main())
