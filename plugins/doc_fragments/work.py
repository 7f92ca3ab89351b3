# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""The options of the modules that write into a capture's work folder."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  work_dir:
    description: The capture's work folder on the host (C(<state folder>/work/<UTC timestamp>-<mode>)).
    type: path
    required: true
  container:
    description: The service's container_name.
    type: str
    default: rust-ingester
"""
