"""What rsky-ingester's own lines look like to the host-side modules (Python 3.8+, standard
library only): its colours, its three task families, its panic banners. The deploy gate
(``gate.py``) and the verification probe (``verify_probe``) read them alike."""

from __future__ import annotations

import re

FAMILIES = ("firehose", "backfill", "labeler")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The hook's banner (every build since 38694b2f) or Rust's default panic text (older builds).
PANIC = re.compile(r"FATAL PANIC OCCURRED|^thread '.*' (\(\d+\) )?panicked at ")
