"""Many hosts in one capture.yml run: wall time for 1, 3 and 6 hosts, and the ratio to one alone.

Each host is a crash-looping stand-in stack under its own compose project name on this one
engine (a local-connection inventory host each, its own state folder); one ``ansible-playbook
capture.yml --forks N`` captures them all (capture mode: debug build, swap, a fixed window) and
closes with the fleet summary. The peer is the same play against one host alone. The window is
fixed (no early stop), so what grows with N is the play's own work on a shared machine.

    .venv/bin/python benchmarks/bench_fleet.py [--hosts 1 3 6] [--window 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from standin.stack import Stack, build_images  # noqa: E402

VENV_BIN = Path(sys.executable).parent
SCENARIO = "hypothetical-task-error"


def inventory(path: Path, stacks: list[Stack], root: Path, window: int) -> Path:
    hosts = {
        f"host{i + 1}": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ingester_project_dir": str(stack.project_dir),
            "ingester_container": stack.container,
            "ingester_debug_image": stack.debug_image,
            "capture_state_dir": str(root / f"state{i + 1}"),
        }
        for i, stack in enumerate(stacks)
    }
    group_vars = {
        "capture_dest": str(root / "captures"),
        "capture_mode": "capture",
        "capture_window_seconds": window,
        "capture_stop_after_restarts": 0,
        "capture_stats_interval_seconds": 2,
        "capture_poll_seconds": 5,
        "capture_stop_timeout_seconds": 2,
        "capture_min_free_bytes": 1_000_000,
    }
    path.write_text(json.dumps({"all": {"children": {"ingester_hosts": {"hosts": hosts, "vars": group_vars}}}}))
    return path


def run_fleet(n: int, root: Path, window: int, tag: str) -> tuple[float, str]:
    """Wall time of one capture.yml run over n fresh stacks, and the fleet's summary line."""
    root.mkdir(parents=True)
    stacks = [
        Stack(root / f"stack{i + 1}", SCENARIO, name_prefix=f"bfl{tag}h{i + 1}", exit_after_ms=1500) for i in range(n)
    ]
    try:
        for stack in stacks:
            stack.up()
        inv = inventory(root / "inv.json", stacks, root, window)
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
        start = time.perf_counter()
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "capture.yml", "--forks", str(n)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"capture.yml over {n} hosts failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}")
        fleet = json.loads((root / "captures" / "fleet.json").read_text())
        if len(fleet["hosts"]) != n or fleet["counts"]["ok"] != n:
            raise SystemExit(f"the fleet summary does not have {n} ok hosts: {fleet['counts']}")
        return wall, str(fleet["summary"])
    finally:
        for stack in stacks:
            stack.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    counts = sorted({1, *args.hosts})
    build_images()
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    best: dict[int, float] = {}
    summaries: dict[int, str] = {}
    try:
        for r in range(args.repeat):
            for n in counts:
                wall, summary = run_fleet(n, root / f"r{r}n{n}", args.window, f"{r}{n}")
                best[n] = min(wall, best.get(n, wall))
                summaries[n] = summary
                print(f"run {r + 1}: {n} host(s): {wall:6.1f} s  ({summary})", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\ncapture.yml, capture mode, fixed {args.window} s window, --forks N, "
        f"{os.cpu_count()} CPUs (best of {args.repeat})"
    )
    print(f"{'hosts':>5}  {'wall s':>7}  {'vs 1 host':>9}  {'per host s':>10}")
    for n in counts:
        print(f"{n:>5}  {best[n]:7.1f}  {best[n] / best[1]:8.2f}x  {best[n] / n:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
