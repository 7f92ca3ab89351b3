# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""What the attributes every module declares mean; each module says its own support."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts without changing the target.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) in diff mode.
"""
