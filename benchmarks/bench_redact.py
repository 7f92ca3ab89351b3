"""Benchmark: the host's redaction of a bundle's log, this checkout against a base revision's.

    .venv/bin/python benchmarks/bench_redact.py --base 1f43a77            # 64 MiB, mix and retry1
    .venv/bin/python benchmarks/bench_redact.py --base v0.1.0 --size-mb 256 --mix signal10

What the seal does to a bundle's log on the host (`redact.redact_bundle`: learn from the file,
then redact it in place, in 8 MiB blocks that overlap), timed in a child process per run, on a
fresh copy of the same generated log (`bench_collector.ensure_log`: Docker's timestamps, ANSI
tracing lines), for this checkout's plugins/module_utils and for the base revision's (`git archive`
into a temporary folder). Rounds of one run each (so a change in the machine's load hits both),
the best of each kept. The peer is the redaction as it was at the base: the ratio is what the
change costs on the host (or saves), and MiB/s is the rate a bundle's log is redacted at.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collector import MIXES, OUT, ensure_log

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys, time
from pathlib import Path
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import Redactor, redact_bundle
out = Path(sys.argv[1])
started = time.perf_counter()
redact_bundle(out, Redactor(), files=[out / "logs" / "ingester.log"])
print(time.perf_counter() - started)
"""


def collection_at(rev: str, where: Path) -> Path:
    """A folder to put on PYTHONPATH that imports `ansible_collections.rsky.ingester_capture` as
    it was at `rev` (its plugins/ only)."""
    tree = where / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "plugins"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    link = where / "collections" / "ansible_collections" / "rsky" / "ingester_capture"
    link.parent.mkdir(parents=True)
    link.symlink_to(tree, target_is_directory=True)
    return where / "collections"


def redact_once(path: Path, pythonpath: Path, work: Path) -> float:
    """One redaction of a fresh copy of `path` by the collection on `pythonpath`: seconds."""
    bundle = work / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    (bundle / "logs").mkdir(parents=True)
    shutil.copyfile(path, bundle / "logs" / "ingester.log")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bundle)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(pythonpath)}, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the redaction failed: {proc.stderr.strip().splitlines()[-1:]}")
    return float(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare with (a commit, a tag)")
    parser.add_argument("--size-mb", type=int, action="append", help="log size in MiB (repeatable; default 64)")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES),
                        help="which logs (repeatable; default mix and retry1)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the best run of each is kept)")
    parser.add_argument("--dir", type=Path, default=OUT, help="where the logs are generated (cached)")
    args = parser.parse_args(argv)
    sizes = args.size_mb or [64]
    mixes = args.mix or ["mix", "retry1"]
    print(f"redact = redact_bundle on a bundle holding only the log (learn, then redact in place); "
          f"base = the same at {args.base}; ratio = this checkout / base", flush=True)
    print(f"{'MiB':>5} {'mix':<9} {'this':>8} {'base':>8} {'ratio':>6} {'MiB/s':>7} {'base MiB/s':>10}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-redact-") as tmp:
        base = collection_at(args.base, Path(tmp) / "base")
        ours = ROOT / "collections"
        work = Path(tmp) / "work"
        for size in sizes:
            for mix in mixes:
                path = ensure_log(size, mix, args.dir)
                mib = path.stat().st_size / (1 << 20)
                best_ours = best_base = float("inf")
                for _ in range(args.repeat):
                    best_ours = min(best_ours, redact_once(path, ours, work))
                    best_base = min(best_base, redact_once(path, base, work))
                print(f"{size:>5} {mix:<9} {best_ours:>7.2f}s {best_base:>7.2f}s {best_ours / best_base:>5.2f}x "
                      f"{mib / best_ours:>7.1f} {mib / best_base:>10.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
