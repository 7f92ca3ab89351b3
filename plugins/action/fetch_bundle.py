# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Fetch the sealed bundle, unpack it on the controller and remove the host's copy: one task.

What used to be four tasks (make the folder, fetch, ``tar -x``, remove the work files) and five
module runs is the builtin fetch (one ``stat`` on the host, the transfer), an unpack in this
process and one ``rm -rf`` over the connection.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tarfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import secure_hash
from ansible_collections.rsky.ingester_capture.plugins.plugin_utils.controller import private_folder
from ansible_collections.rsky.ingester_capture.plugins.plugin_utils.tar_scan import UnsafeTarball, scan

ARGUMENT_SPEC = {
    "src": {"type": "path", "required": True},
    "dest": {"type": "path", "required": True},
    "remove": {"type": "list", "elements": "path", "default": []},
    "checksum": {"type": "str", "default": ""},
    "max_bytes": {"type": "int", "default": 1 << 30},
    "max_member_bytes": {"type": "int", "default": 0},
}


# A tarball member that is not a plain file or folder inside the destination, or a tarball too
# large to unpack: the shared header check's refusal, under the name this action has always used.
UnsafeBundle = UnsafeTarball


def safe_members(tar: tarfile.TarFile, dest: str) -> List[tarfile.TarInfo]:
    """Every member, checked: a regular file or folder whose path stays inside ``dest``; owned by
    whoever unpacks (the host's owners mean nothing here), no setuid, setgid or group/other write."""
    root = Path(dest).resolve()
    members = []
    for member in tar.getmembers():
        if not (member.isfile() or member.isdir()) or member.issparse():
            raise UnsafeBundle("%s is not a regular file or folder" % member.name)
        path = (root / member.name).resolve()
        if path != root and root not in path.parents:
            raise UnsafeBundle("%s would land outside %s" % (member.name, dest))
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
        member.mode &= 0o755
        members.append(member)
    return members


def unpack(tarball: str, dest: str, max_bytes: int = 1 << 30, max_member_bytes: int = 0) -> int:
    """Unpack ``tarball`` into ``dest`` (made 0750 when missing), once :func:`scan` passed it; the
    number of files. ``max_member_bytes`` 0: as ``max_bytes``."""
    try:
        scan(tarball, max_bytes, max_member_bytes or max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnsafeBundle("not a readable gzip'd tarball: %s" % exc) from exc
    folder = Path(dest)
    private_folder(folder)
    with tarfile.open(tarball, "r:gz") as tar:
        members = safe_members(tar, dest)
        # Checked above, one by one; the folder itself keeps its 0750.
        trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        for member in members:
            at_root = os.path.normpath(member.name) == "."
            tar.extract(member, dest, set_attrs=not at_root, **trusted)  # type: ignore[arg-type]
    return sum(1 for m in members if m.isfile())


def write_sha256(tarball: str) -> str:
    """``<tarball>.sha256`` beside it (``sha256sum -c`` reads it); the digest."""
    digest = hashlib.sha256()
    with Path(tarball).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    line = "%s  %s\n" % (digest.hexdigest(), Path(tarball).name)
    Path(tarball + ".sha256").write_text(line)
    return digest.hexdigest()


class ActionModule(ActionBase):
    """fetch, unpack, remove."""

    TRANSFERS_FILES = True
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if self._task.check_mode:
            result.update(changed=False, skipped=True, msg="check mode: nothing fetched")
            return result
        dest = os.path.abspath(str(args["dest"]))
        tarball = dest + ".tar.gz"
        # Every host's bundles are below it: closed to other users, whichever way the tarball comes.
        private_folder(Path(tarball).parent)
        remove = [str(p) for p in args["remove"]]
        for path in remove:
            if not Path(path).is_absolute() or len(Path(os.path.normpath(path)).parts) < 3:
                raise AnsibleActionFail("fetch_bundle: refusing to remove %r on the host (not a work path)" % path)
        if args["checksum"] and not self._connection.become:
            fetched = self._fetch_direct(str(args["src"]), tarball, str(args["checksum"]))
        else:
            fetched = self._fetch(str(args["src"]), tarball, task_vars)
        if fetched.get("failed"):
            return dict(result, **fetched)
        sha256 = write_sha256(tarball)
        try:
            files = unpack(tarball, dest, int(args["max_bytes"]), int(args["max_member_bytes"]))
        except (OSError, tarfile.TarError, UnsafeBundle) as exc:
            raise AnsibleActionFail("the bundle %s could not be unpacked into %s: %s" % (tarball, dest, exc)) from exc
        removed: List[str] = []
        if remove:
            cmd = "rm -rf -- %s" % " ".join(shlex.quote(p) for p in remove)
            ran = self._low_level_execute_command(cmd, sudoable=True)
            if ran.get("rc") == 0:
                removed = remove
            else:
                warning = "the bundle is safe on the controller, but %s could not be removed on the host: %s" % (
                    ", ".join(remove),
                    (ran.get("stderr") or ran.get("stdout") or "rc %s" % ran.get("rc")).strip()[:300],
                )
                result.setdefault("warnings", []).append(warning)
        result.update(
            changed=True,
            dest=dest,
            tarball=tarball,
            files=files,
            checksum=fetched.get("checksum"),
            sha256=sha256,
            removed=removed,
        )
        return result

    def _fetch_direct(self, src: str, tarball: str, expected: str) -> Dict[str, Any]:
        """The transfer alone, checked against the checksum the seal module computed on the host
        (what fetch's stat module run would have told)."""
        try:
            self._connection.fetch_file(src, tarball)
        except AnsibleError as exc:
            return {"failed": True, "msg": "the bundle %s could not be fetched: %s" % (src, exc)}
        got = secure_hash(tarball)
        if got != expected:
            return {"failed": True, "msg": "checksum mismatch", "file": src, "checksum": got, "remote_checksum": expected}
        return {"changed": True, "checksum": got, "dest": tarball}

    def _fetch(self, src: str, tarball: str, task_vars: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        """ansible.builtin.fetch itself: its stat, or slurp under become, and its checksum check."""
        fetch_task = self._task.copy()
        fetch_task.args = {"src": src, "dest": tarball, "flat": True}
        fetch = self._shared_loader_obj.action_loader.get(
            "ansible.builtin.fetch",
            task=fetch_task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        return dict(fetch.run(task_vars=task_vars))
