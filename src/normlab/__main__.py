"""``python -m normlab``: the ``normlab`` command, where the console script is not installed."""

import sys

from normlab.cli import main

sys.exit(main())
