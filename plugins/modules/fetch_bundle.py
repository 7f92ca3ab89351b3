#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Documentation of the fetch_bundle action (plugins/action/fetch_bundle.py); it runs on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fetch_bundle
short_description: Fetch the sealed bundle, unpack it on the controller and remove the host's copy
description:
  - Fetches O(src) (the tarball the seal module wrote) to O(dest)C(.tar.gz) with C(ansible.builtin.fetch), so its
    checksum is compared and privilege escalation is handled as C(fetch) handles it.
  - Writes O(dest)C(.tar.gz.sha256) beside the tarball (C(sha256sum -c) reads it).
  - Before anything is unpacked, reads the tarball header by header itself, without C(tarfile), and allows regular
    files and folders only (a symlink, a hard link, a device, a FIFO, a sparse file, an absolute path or a C(..) part refuses the
    whole bundle), each file at most O(max_member_bytes), all of them at most O(max_bytes) (sizes from the headers,
    PAX and GNU long-name headers included), and every extended header small (8 KiB) and well formed, so that
    C(tarfile)'s PAX parser, quadratic on some input before Python 3.12.6 (CVE-2024-6232), never sees a large one.
    A refusal says which member and why, and nothing is unpacked.
  - Unpacks it into O(dest) (made with mode C(0750) when missing), nothing outside O(dest), owned by the controller's
    user.
  - Then removes O(remove) on the host with one C(rm -rf) over the task's connection (and its C(become)). A failed
    removal is a warning naming what was left, since the bundle is already safe on the controller.
  - Runs as an action on the controller; the host sees the transfer (and, without O(checksum) or under C(become), one
    C(stat) or C(slurp) module run).
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (C(ansible.builtin.fetch) and, under become, C(slurp))
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
options:
  src:
    description: The tarball on the host.
    type: path
    required: true
  dest:
    description: The folder on the controller the bundle is unpacked into; the tarball is kept beside it.
    type: path
    required: true
  remove:
    description: Absolute paths on the host removed once the bundle is unpacked (the work folder and the tarball).
    type: list
    elements: path
    default: []
  checksum:
    description:
      - The tarball's SHA-1 as the seal module computed it on the host. Without C(become), the tarball is then
        transferred directly and checked against it, with no C(stat) module run; with C(become), or when empty,
        C(ansible.builtin.fetch) does the transfer and its own check.
    type: str
    default: ""
  max_bytes:
    description: The most the bundle may unpack to, in bytes (the sum of its files' sizes).
    type: int
    default: 1073741824
  max_member_bytes:
    description: The most one file of the bundle may unpack to, in bytes; 0 for O(max_bytes).
    type: int
    default: 0
attributes:
  check_mode:
    support: none
    details: In check mode nothing is fetched, unpacked or removed; the task is skipped.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Fetch the bundle
  rsky.ingester_capture.fetch_bundle:
    src: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture.tar.gz
    dest: captures/prod-1/20260101T000000Z-capture
    remove:
      - /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
      - /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture.tar.gz
"""

RETURN = r"""
dest:
  description: The folder the bundle was unpacked into.
  returned: unless in check mode
  type: str
  sample: "captures/prod-1/20260101T000000Z-capture"
tarball:
  description: The fetched tarball on the controller.
  returned: unless in check mode
  type: str
  sample: "captures/prod-1/20260101T000000Z-capture.tar.gz"
files:
  description: Files unpacked.
  returned: unless in check mode
  type: int
  sample: 23
checksum:
  description: The tarball's SHA-1, as C(fetch) compared it.
  returned: unless in check mode
  type: str
  sample: "3f786850e387550fdab836ed7e6dc881de23001b"
sha256:
  description: The tarball's SHA-256, also written to O(dest)C(.tar.gz.sha256).
  returned: unless in check mode
  type: str
  sample: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
removed:
  description: What was removed on the host.
  returned: unless in check mode
  type: list
  sample:
    - /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
    - /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture.tar.gz
  elements: str
"""
