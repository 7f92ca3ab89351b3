"""The play's own overhead on the demo stack, against the manual runbook's commands.

Both run on the same crash-looping stand-in stack, one after the other, in the same run:
  - ours: `ansible-playbook capture.yml` (capture mode);
  - the peer: the runbook's shell commands (git pull, docker build, sed the image tag, stop, rm,
    `up | tee` for the same window, the grep/dmesg/inspect steps).
Overhead = total wall time - capture window - image build, for each. Prints both and the ratio.

    .venv/bin/python benchmarks/bench_play.py [--window 20] [--repeat 2] [--profile]

--profile also prints capture.yml's slowest tasks in its best run (benchmarks/callback_plugins).
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


def inventory(path: Path, stack: Stack, dest: Path, state: Path, window: int) -> Path:
    path.write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "ingester_hosts": {
                            "hosts": {
                                "bench": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": "/usr/bin/python3",
                                }
                            },
                            "vars": {
                                "ingester_project_dir": str(stack.project_dir),
                                "ingester_container": stack.container,
                                "ingester_debug_image": stack.debug_image,
                                "capture_state_dir": str(state),
                                "capture_dest": str(dest),
                                "capture_mode": "capture",
                                "capture_window_seconds": window,
                                "capture_stop_after_restarts": 0,
                                "capture_stats_interval_seconds": 2,
                                "capture_poll_seconds": 5,
                                "capture_stop_timeout_seconds": 2,
                                "capture_min_free_bytes": 1_000_000,
                            },
                        }
                    }
                }
            }
        )
    )
    return path


def build_seconds(stack: Stack) -> float:
    """Time of the runbook's docker build alone (cached layers, as on a second run)."""
    start = time.perf_counter()
    subprocess.run(
        ["docker", "build", "-q", "-f", "../rsky/rsky-ingester/Dockerfile", "-t", stack.debug_image, "../rsky"],
        cwd=stack.project_dir,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def run_ours(stack: Stack, root: Path, window: int, profile: bool = False) -> tuple[float, float, int]:
    dest, state = root / "captures", root / "state"
    root.mkdir(parents=True, exist_ok=True)
    inv = inventory(root / "inv.json", stack, dest, state, window)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    if profile:
        env.update(
            ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).with_name("callback_plugins")),
            ANSIBLE_CALLBACKS_ENABLED="task_times",
            TASK_TIMES_FILE=str(root / "task-times.json"),
        )
    start = time.perf_counter()
    proc = subprocess.run(
        # ingester_rebuild: build every time, as the peer does, so that subtracting the build is fair.
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "capture.yml", "-e", "ingester_rebuild=true"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"capture.yml failed:\n{proc.stdout[-3000:]}")
    tasks = proc.stdout.count("\nTASK [")
    bundle = sorted(p for p in dest.glob("*/*") if p.is_dir())[-1]
    window_json = json.loads((bundle / "window.json").read_text())
    elapsed = float(window_json["window_end_epoch"]) - float(window_json["window_start_epoch"])
    # Put production back for the next run.
    swap = next(state.glob("*/compose.orig"))
    stack.compose_path.write_bytes(swap.read_bytes())
    shutil.rmtree(state)
    stack.compose("up", "-d", "--no-deps", "ingester")
    return total, elapsed, tasks


def run_runbook(stack: Stack, root: Path, window: int) -> tuple[float, float]:
    """The investigation's manual steps, scripted as literally as possible."""
    root.mkdir(parents=True, exist_ok=True)
    tee = root / "ingester_debug.log"
    compose = ["docker", "compose", "-f", stack.compose_file]
    cwd = stack.project_dir
    original = stack.compose_path.read_bytes()
    start = time.perf_counter()
    subprocess.run(["git", "pull", "origin", "rude1/backfill"], cwd=cwd, capture_output=True)
    subprocess.run(
        ["docker", "build", "-f", "../rsky/rsky-ingester/Dockerfile", "-t", stack.debug_image, "../rsky"],
        cwd=cwd,
        capture_output=True,
        check=True,
    )
    subprocess.run(
        ["sed", "-i", f"0,/image: rsky-ingester:latest/s//XX/;s/XX/image: {stack.debug_image}/", stack.compose_file],
        cwd=cwd,
        check=True,
    )
    subprocess.run([*compose, "stop", "-t", "2", "ingester"], cwd=cwd, capture_output=True, check=True)
    subprocess.run([*compose, "rm", "-f", "ingester"], cwd=cwd, capture_output=True, check=True)
    window_start = time.perf_counter()
    with tee.open("wb") as sink:
        up = subprocess.Popen(
            [*compose, "up", "ingester"], cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        time.sleep(window)
        os.killpg(up.pid, 9)
        up.wait()
    elapsed = time.perf_counter() - window_start
    for pattern in ("EXIT-TRACE", "CRITICAL"):
        subprocess.run(["grep", pattern, str(tee)], capture_output=True)
    subprocess.run(["grep", "-A", "20", "FATAL PANIC", str(tee)], capture_output=True)
    subprocess.run(["sh", "-c", f"grep 'Starting rsky-ingester' {tee} | nl"], capture_output=True)
    subprocess.run(["sh", "-c", "dmesg | grep -i 'killed process'"], capture_output=True)
    subprocess.run(["docker", "stats", stack.container, "--no-stream"], capture_output=True)
    subprocess.run(["docker", "inspect", stack.container], capture_output=True)
    total = time.perf_counter() - start
    stack.compose_path.write_bytes(original)
    stack.compose("up", "-d", "--no-deps", "ingester")
    return total, elapsed


def slowest(path: Path, count: int = 12) -> list[str]:
    """capture.yml's slowest tasks in one run (the window's follow is the window)."""
    times = json.loads(path.read_text())
    rows = sorted(times["tasks"], key=lambda r: -r["seconds"])[:count]
    return [f"  {r['seconds']:6.2f} s  {r['task']}" for r in rows]


def line(total: float, elapsed: float, build: float) -> str:
    overhead = total - elapsed - build
    return f"total {total:6.1f} s, window {elapsed:5.1f} s, build {build:4.1f} s -> overhead {overhead:5.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print capture.yml's slowest tasks")
    args = parser.parse_args()
    build_images()
    root = Path(tempfile.mkdtemp(prefix="bench-play-"))
    stack = Stack(root / "stack", "task-error", name_prefix="benchplay", exit_after_ms=3000)
    stack.up()
    try:
        build = min(build_seconds(stack) for _ in range(2))
        ours, peer = [], []
        for i in range(args.repeat):
            total, elapsed, tasks = run_ours(stack, root / f"ours{i}", args.window, args.profile)
            ours.append(total - elapsed - build)
            print(f"capture.yml   run {i + 1}: {line(total, elapsed, build)}, {tasks} tasks shown")
            total, elapsed = run_runbook(stack, root / f"peer{i}", args.window)
            peer.append(total - elapsed - build)
            print(f"runbook steps run {i + 1}: {line(total, elapsed, build)}")
        best_ours, best_peer = min(ours), min(peer)
        print(
            f"\noverhead: capture.yml {best_ours:.1f} s (goal <= 8 s), scripted runbook {best_peer:.1f} s, "
            f"ratio {best_ours / best_peer:.1f}x (goal <= 3x)"
        )
        print("(the scripted runbook has no pre-flight, snapshot, events, stats, redaction, bundle or diagnosis)")
        if args.profile:
            best = min(range(len(ours)), key=ours.__getitem__)
            print(f"\ncapture.yml's slowest tasks, run {best + 1}:")
            print("\n".join(slowest(root / f"ours{best}" / "task-times.json")))
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
