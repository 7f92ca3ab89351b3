"""`python -m ingester_capture.verify`: see the package docstring."""

import sys

from .cli import main

sys.exit(main())
