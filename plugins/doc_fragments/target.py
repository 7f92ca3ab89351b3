"""The options every module that knows the capture target shares."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  project_dir:
    description: Compose project directory on the host (absolute).
    type: path
    required: true
  compose_file:
    description: Compose file, relative to O(project_dir).
    type: str
    default: docker-compose.prod-rust.yml
  service:
    description: Compose service to capture.
    type: str
    default: ingester
  state_dir:
    description:
      - Root of the host-side state; this target's folder is C(<state_dir>/<key>), the key being the first
        12 hex digits of C(sha256("<project_dir>/<compose_file>:<service>")) (docs/host-state.md).
    type: path
    default: /var/lib/ingester-capture
"""
