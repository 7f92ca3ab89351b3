"""`python -m ingester_capture`: the same as the `ingester-collector` console script."""

import sys

from .cli import main

sys.exit(main())
