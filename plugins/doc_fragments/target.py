# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
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
  project_name:
    description:
      - The compose project name every compose call runs under (C(-p)); the running container's
        C(com.docker.compose.project) label, as M(rsky.ingester_capture.preflight) returns it in
        RV(rsky.ingester_capture.preflight#module:project.name).
      - Empty, the project a recorded swap ran under, else compose's own choice (the file's C(name:) or the folder).
    type: str
    default: ""
  project_working_dir:
    description: The compose project directory of the compose calls (the container's C(working_dir) label); empty for O(project_dir).
    type: str
    default: ""
  project_config_files:
    description:
      - The compose files of the compose calls (the container's C(config_files) label), in order; empty for the
        compose file alone. The swapped file is the compose file when it is one of them, else the last that sets the image.
    type: list
    elements: str
    default: []
"""
