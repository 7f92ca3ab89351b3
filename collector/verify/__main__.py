"""`python -m collector.verify`: see the package docstring."""

import sys

from collector.verify.cli import main

sys.exit(main())
