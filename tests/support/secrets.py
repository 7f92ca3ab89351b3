"""Looking for leaked secrets: every text a run left (files, tarball members), and a job run through
ansible-runner the way collector/runner.py starts one (as an AWX-style job or cron would)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.playbooks import REPO, VENV_BIN

# Short verify windows; thresholds stay the product's defaults (uptime 0: judge the loop itself).
VERIFY_QUICK = {"verify_window_seconds": 6, "verify_sample_interval_seconds": 1, "verify_min_uptime_hours": 0}


def _texts_of_file(path: Path, label: str) -> Iterator[tuple[str, str]]:
    """The text of one file, and of every member when it is a tar archive."""
    data = path.read_bytes()
    yield label, data.decode("utf-8", errors="replace")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                if handle is not None:
                    yield f"{label}!{member.name}", handle.read().decode("utf-8", errors="replace")


def walk(root: Path, what: str) -> dict[str, str]:
    """Every file under ``root`` (tarballs opened), keyed by '<what>:<relative path>'."""
    texts: dict[str, str] = {}
    if not root.exists():
        return texts
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            texts.update(_texts_of_file(path, f"{what}:{path.relative_to(root)}"))
    return texts


def runner_env() -> dict[str, str]:
    """What collector/runner.py hands ansible-runner, nothing more."""
    return {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{VENV_BIN}:/usr/bin:/bin:/usr/sbin:/sbin",
    }


def run_with_ansible_runner(private: Path, playbook: str, inventory: Path, cmdline: str) -> tuple[str, int]:
    """One ansible-runner job, the way collector/runner.py starts one: (status, rc)."""
    import ansible_runner

    private.mkdir(mode=0o700)
    result = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(REPO / playbook),
        inventory=[str(inventory)],
        envvars=runner_env(),
        project_dir=str(REPO),
        cmdline=cmdline,
        verbosity=1,
        quiet=True,
    )
    return str(result.status), int(result.rc)
