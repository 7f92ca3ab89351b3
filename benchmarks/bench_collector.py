"""Benchmark: the collector against grep on generated logs shaped like real output.

    .venv/bin/python benchmarks/bench_collector.py                       # 100 MB and 1 GB, all mixes
    .venv/bin/python benchmarks/bench_collector.py --size-mb 1024 --mix signal50 --dir /tmp/b

Logs (`docker logs --timestamps` prefixes, ANSI tracing lines as the service prints them), generated
once per size and mix into --dir (default benchmarks/out/, cached; --scratch: a temporary directory
removed afterwards, each log deleted once measured):

* `mix`: thousands of runs of ordinary lines ending in every kind of exit: [EXIT-TRACE]
  breadcrumbs, CRITICAL lines, panic banners, `Error:` lines (about 1 line in 5000 a Pressure line);
* `retry1`: `signal10` where about one line in a hundred is a retried connection error
  (`FirehoseIngester connection error for ..` + `Retrying in 5 seconds...`) among the warnings;
* `signal10`, `signal50`: the documented OOM. Runs of 6000-14000 lines where the write task's
  `received batch` lines are followed by `Backpressure active: .. events_in_memory=N` (N climbing;
  one in ten a `Memory metrics: N events in-flight` line) until 10% resp. 50% of all lines are
  such warnings; now and then a retried connection error; each run cut off by the OOM kill.

With the file in the page cache it then times, on the same file, in --repeat rounds of one run
of each (so a change in the machine's load hits all of them), the best of each kept:

* the collector as the CLI runs it: `python -m collector summarize --log FILE --out DIR --quiet`
  (start-up, reading, diagnosis and the three reports), ripgrep doing the search when installed;
  peak RSS and CPU seconds from wait4 (the largest of it and the processes it waited for:
  ripgrep, the forked reader, its helper; CPU summed). The collector uses the machine's second
  CPU (the reader process and the searches run alongside the process that builds the runs),
  each grep peer one: the CPU columns show what that costs;
* the same with `INGESTER_COLLECTOR_NO_RG=1` (the GNU grep fallback), in the first round only;
* with --pure, the same with `INGESTER_COLLECTOR_NO_GREP=1` (no external search), likewise;
* `grep -c -E 'EXIT-TRACE|CRITICAL|FATAL PANIC|panicked' FILE`;
* the runbook's greps one after another: `grep 'EXIT-TRACE'`, `grep 'CRITICAL'`,
  `grep -A 20 'FATAL PANIC'`, `grep 'Starting rsky-ingester' | nl`;
* the same followed by the runbook's "Timing Analysis" command,
  `grep -E 'Starting rsky-ingester|EXIT-TRACE|CRITICAL' FILE | awk '{print $1, $2, $NF}'`.

Targets (issues 10 and 19): at 1 GiB, on every mix (retry1 included), collector <= 2x the grep -c
and faster than the runbook's greps in sequence (`/runbook < 1`: its four "Extract Key
Information" greps, the yardstick the issues measured with), peak RSS < 150 MB. The runbook also
greps the log a fifth time in its "Timing Analysis" step, which the report answers too: the whole
sequence is printed beside it (`/rb+tim`).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
GENERATOR_VERSION = 2
ESC = "\x1b"
HOSTS = (
    "https://relay1.us-east.bsky.network",
    "https://relay1.us-west.bsky.network",
    "https://atproto.africa",
)


def _tracing(ts: str, level: str, target: str, msg: str) -> str:
    colour = {"INFO": "32", "WARN": "33", "ERROR": "31"}[level]
    return (
        f"{ESC}[2m{ts}{ESC}[0m {ESC}[{colour}m{level:>5}{ESC}[0m "
        f"{ESC}[2m{target}{ESC}[0m{ESC}[2m:{ESC}[0m {msg}"
    )


def _stamp(t: float) -> str:
    whole = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((t - whole) * 1e9):09d}Z"


def _short(t: float) -> str:
    whole = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((t - whole) * 1e6):06d}Z"


ORDINARY = (
    ("INFO", "rsky_ingester::firehose", "Write task received batch of 500 events"),
    ("INFO", "rsky_ingester::firehose", "Flushed 500 events to stream firehose_live"),
    ("INFO", "rsky_ingester::backfill", "Processed 10000 repos, cursor: did:plc:{r}"),
    ("INFO", "rsky_ingester::labeler", "Received label batch seq={r} count=12"),
    ("INFO", "rsky_ingester::firehose", "Connecting to wss://{h}/xrpc/com.atproto.sync."
     "subscribeRepos?cursor={r} with cursor {r}"),
    ("WARN", "rsky_ingester::firehose", "FirehoseIngester connection for {h} closed gracefully. "
     "Reconnecting in 5 seconds..."),
)


def generate(path: Path, size_mb: int, seed: int = 4) -> None:
    """Write a log of about size_mb MiB: runs of ~600-1400 ordinary lines ending in an exit."""
    rng = random.Random(seed)
    target = size_mb * 2**20
    t = 1795946400.0
    written = 0
    run = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        while written < target:
            run += 1
            buf: list[str] = []

            def out(line: str, ts: float, buf: list[str] = buf) -> None:
                buf.append(f"{_stamp(ts)} {line}\n")

            out("[EXIT-TRACE] Running in 'all' mode", t)
            out(_tracing(_short(t), "INFO", "ingester", "Starting rsky-ingester"), t + 0.0001)
            out(_tracing(_short(t), "INFO", "ingester", "Configuration: IngesterConfig { "
                         "redis_url: \"redis://redis:6379\", relay_hosts: [...] }"), t + 0.0002)
            for crumb in ("Spawning firehose and backfill tasks",
                          "Spawning labeler task (hosts configured)",
                          "Entering tokio::select! with all three tasks"):
                out(f"[EXIT-TRACE] {crumb}", t + 0.0003)
            n = rng.randint(600, 1400)
            step = 24.0 / n
            for i in range(n):
                ts = t + 0.001 + i * step
                level, target_name, msg = ORDINARY[rng.randrange(len(ORDINARY))]
                msg = msg.format(r=rng.randrange(10**9), h=HOSTS[i % 3])
                out(_tracing(_short(ts), level, target_name, msg), ts)
            t_end = t + 24.5
            kind = run % 4
            if kind == 0:
                out(_tracing(_short(t_end), "ERROR", "rsky_ingester::labeler",
                             "CRITICAL: Labeler ingester for https://atproto.africa exited with "
                             "error: WebSocket(ConnectionClosed)"), t_end)
                out("This task should never exit. Investigate immediately.", t_end)
                out("[EXIT-TRACE] tokio::select! triggered on labeler_handle - EXIT PATH F", t_end)
                out("[EXIT-TRACE] Labeler result: Ok(Err(CRITICAL: All labeler tasks exited.))",
                    t_end)
                out("Error: CRITICAL: Labeler ingester exited unexpectedly.", t_end)
            elif kind == 1:
                for line in ("=" * 80, "FATAL PANIC OCCURRED", "=" * 80,
                             "Location: rsky-ingester/src/labeler.rs:123:45",
                             "Message: called `Option::unwrap()` on a `None` value", "",
                             "This is a critical error that should never occur in production.",
                             "Please report this issue with the complete log output.", "=" * 80,
                             "", "Backtrace:", 'Backtrace [{ fn: "x", file: "y", line: 61 }]',
                             "=" * 80):
                    out(line, t_end)
                out("[EXIT-TRACE] tokio::select! triggered on labeler_handle - EXIT PATH F", t_end)
                out('[EXIT-TRACE] Labeler result: Err(JoinError::Panic(Id(6), "called '
                    '`Option::unwrap()` on a `None` value", ..))', t_end)
                out("Error: CRITICAL: Labeler ingester exited unexpectedly.", t_end)
            elif kind == 2:
                out("", t_end)
                out("thread 'tokio-runtime-worker' panicked at rsky-ingester/src/firehose.rs:88:21:",
                    t_end)
                out("index out of bounds: the len is 0 but the index is 0", t_end)
                out("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
                    t_end)
                out("[EXIT-TRACE] tokio::select! triggered on firehose_handle - EXIT PATH D", t_end)
                out('[EXIT-TRACE] Firehose result: Err(JoinError::Panic(Id(6), "index out of '
                    'bounds", ..))', t_end)
                out("Error: CRITICAL: Firehose ingester exited unexpectedly.", t_end)
            else:
                out(_tracing(_short(t_end), "WARN", "rsky_ingester::firehose",
                             "Backpressure active: stream_len=1564120, high_water=100000, "
                             f"events_in_memory={rng.randrange(10**6)}"), t_end)
            text = "".join(buf)
            fh.write(text)
            written += len(text)
            t = t_end + 1.2
    tmp.replace(path)


def generate_signal(path: Path, size_mb: int, share: float, seed: int = 7, retry: float = 0.002) -> None:
    """Write a log of about size_mb MiB where `share` of the lines are ones the collector reads.

    The documented OOM, as the real service prints it: each run starts (banner, `Configuration:`,
    host tasks), then the write task's `received batch` lines, each followed under Redis
    backpressure by `Backpressure active: ..events_in_memory=N` with N climbing, now and then
    `Memory metrics: N events in-flight` and a retried connection error; then the log stops (the
    OOM killer's SIGKILL, exit 137) and the next run starts. Production build: no EXIT-TRACE.
    `share` counts the backpressure and memory-metrics lines (the needle lines of a run's body);
    `retry` is the chance that a line outside the pairs is a retried connection error (two lines).
    """
    rng = random.Random(seed)
    target = size_mb * 2**20
    t = 1795946400.0
    written = 0
    fire, ing = "rsky_ingester::firehose", "ingester"
    batch = _tracing("{ts}", "INFO", fire, "Write task received batch of 500 events")
    flushed = _tracing("{ts}", "INFO", fire, "Flushed 500 events to stream firehose_live")
    pressure = _tracing("{ts}", "WARN", fire,
                        "Backpressure active: stream_len={s}, high_water=100000, events_in_memory={n}")
    metrics = _tracing("{ts}", "INFO", "rsky_ingester::batcher", "Memory metrics: {n} events in-flight")
    conn_err = _tracing("{ts}", "ERROR", fire, "FirehoseIngester connection error for {h}: "
                        "WebSocket(Io(Os {{ code: 104, kind: ConnectionReset, message: "
                        "\"Connection reset by peer\" }}))")
    pair = share / (1 - share) if share < 0.5 else 1.0  # a pair is 2 lines, 1 of them signal
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        while written < target:
            buf: list[str] = []
            add = buf.append

            def start(ts: float, msg: str, target_name: str = ing, add: Callable[[str], None] = add) -> None:
                add(f"{_stamp(ts)} {_tracing(_short(ts), 'INFO', target_name, msg)}\n")

            start(t, "Starting rsky-ingester")
            start(t + 0.0001, "Configuration: IngesterConfig { redis_url: \"redis://redis:6379\", "
                  "relay_hosts: [\"https://relay1.us-east.bsky.network\", "
                  "\"https://relay1.us-west.bsky.network\", \"https://atproto.africa\"], "
                  "labeler_hosts: [\"https://atproto.africa\"], high_water_mark: 100000, "
                  "batch_size: 500, batch_timeout_ms: 1000 }")
            start(t + 0.0002, "Starting firehose ingesters for 3 hosts")
            for i, h in enumerate(HOSTS):
                start(t + 0.0003 + i * 1e-5, f"Starting FirehoseIngester for {h}", fire)
            n_lines = rng.randint(6000, 14000)
            step = 60.0 / n_lines
            in_memory = rng.randrange(10**5)
            stream = 1564120
            i = 0
            while i < n_lines:
                ts = t + 0.001 + i * step
                stamp, short = _stamp(ts), _short(ts)
                if rng.random() < pair:
                    # a batch, then the warning that nearly always follows it under backpressure
                    add(f"{stamp} {batch.format(ts=short)}\n")
                    in_memory += rng.randrange(500, 5000)
                    stream += rng.randrange(0, 300)
                    if rng.random() < 0.1:
                        add(f"{stamp} {metrics.format(ts=short, n=in_memory)}\n")
                    else:
                        add(f"{stamp} {pressure.format(ts=short, s=stream, n=in_memory)}\n")
                    i += 2
                    continue
                r = rng.random()
                if r < retry:
                    add(f"{stamp} {conn_err.format(ts=short, h=HOSTS[i % 3])}\n")
                    add(f"{stamp} Retrying in 5 seconds...\n")
                    i += 2
                    continue
                add(f"{stamp} {(batch if r < 0.6 else flushed).format(ts=short)}\n")
                i += 1
            text = "".join(buf)
            fh.write(text)
            written += len(text)
            t += 61.0 + rng.random() * 5  # OOM kill, Docker restarts it
    tmp.replace(path)


MIXES = {
    "mix": "runs of ordinary lines ending in every kind of exit (issue 4's mix)",
    "signal10": "OOM under backpressure: 10% of lines backpressure warnings / memory metrics",
    "signal50": "OOM under backpressure: every received batch followed by a warning (50%)",
    "retry1": "backpressure (10% warnings) where about 1 line in 100 is a retried connection error",
}


def ensure_log(size_mb: int, mix: str = "mix", where: Path = OUT) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"bench-{mix}-{size_mb}mb-v{GENERATOR_VERSION}.log"
    if not path.exists():
        started = time.monotonic()
        if mix == "mix":
            generate(path, size_mb)
        else:
            share = {"signal10": 0.1, "signal50": 0.5, "retry1": 0.1}[mix]
            generate_signal(path, size_mb, share, retry=0.012 if mix == "retry1" else 0.002)
        print(f"generated {path.name} in {time.monotonic() - started:.1f} s", flush=True)
    return path


def _timed(argv: list[str], *, shell: bool = False) -> tuple[float, int, float]:
    """Wall seconds, peak RSS in KiB and CPU seconds (user + system) of the child, from wait4
    (the child with the children it waited for: ripgrep, grep, the collector's helper)."""
    # Output goes to a real file: GNU grep stops at the first match when stdout is /dev/null.
    with tempfile.TemporaryFile() as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv if not shell else argv[0],
            shell=shell,
            stdout=sink,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def _env_timed(argv: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    old = dict(os.environ)
    os.environ.update(env)
    try:
        return _timed(argv)
    finally:
        os.environ.clear()
        os.environ.update(old)


def measure(path: Path, repeat: int, *, pure: bool = False) -> dict[str, float]:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # page cache
    # Bytecode, as an installed package has it (pip compiles on install): without it every run
    # would first compile the collector's sources (~40 ms), more so under PYTHONDONTWRITEBYTECODE.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "collector")],
                   stdout=subprocess.DEVNULL, check=True)
    q = str(path).replace("'", "'\\''")
    runbook = (
        f"grep 'EXIT-TRACE' '{q}'; grep 'CRITICAL' '{q}'; grep -A 20 'FATAL PANIC' '{q}'; "
        f"grep 'Starting rsky-ingester' '{q}' | nl"
    )
    # The runbook's analysis also has a "Timing Analysis" step over the same file; the collector
    # answers that question too, so the full sequence is the fairer peer. Both are printed.
    timing = f"grep -E 'Starting rsky-ingester|EXIT-TRACE|CRITICAL' '{q}' | awk '{{print $1, $2, $NF}}'"
    with tempfile.TemporaryDirectory() as out:
        collector = [sys.executable, "-m", "collector", "summarize", "--log", str(path),
                     "--out", out, "--quiet"]
        runs: dict[str, Callable[[], tuple[float, int, float]]] = {
            "collector": lambda: _timed(collector),
            "grep_c": lambda: _timed(["grep", "-c", "-E", "EXIT-TRACE|CRITICAL|FATAL PANIC|panicked",
                                      str(path)]),
            "runbook": lambda: _timed([runbook], shell=True),  # noqa: S604 - as typed
            "runbook_full": lambda: _timed([f"{runbook}; {timing}"], shell=True),  # noqa: S604
        }
        once: dict[str, Callable[[], tuple[float, int, float]]] = {
            "grep_fallback": lambda: _env_timed(collector, {"INGESTER_COLLECTOR_NO_RG": "1"}),
        }
        if pure:
            once["pure"] = lambda: _env_timed(collector, {"INGESTER_COLLECTOR_NO_GREP": "1"})
        # Rounds of one run each, best kept: a change in the machine's load hits every command
        # alike, not the one that happened to run then.
        times: dict[str, list[float]] = {k: [] for k in [*runs, *once]}
        cpu: dict[str, list[float]] = {k: [] for k in times}
        rss: dict[str, int] = {k: 0 for k in times}
        for i in range(repeat):
            for name, fn in [*runs.items(), *(once.items() if i == 0 else [])]:
                elapsed, peak, used = fn()
                times[name].append(elapsed)
                cpu[name].append(used)
                rss[name] = max(rss[name], peak)
    r = {f"{k}_s": min(v) for k, v in times.items()}
    r.update({f"{k}_cpu_s": min(v) for k, v in cpu.items()})
    r.update({f"{k}_rss_mib": v / 1024 for k, v in rss.items()})
    return r


HEADER = (
    f"{'MiB':>5} {'mix':<9} {'collector':>9} {'RSS MiB':>7} {'grep -c':>7} {'runbook':>7} "
    f"{'rb+timing':>9} {'/grep-c':>7} {'/runbook':>8} {'/rb+tim':>7} {'grep-fb':>7} {'/grep-c':>7} "
    f"{'fb RSS':>6} | CPU s: {'coll':>5} {'grep-c':>6} {'runbk':>5} {'/grep-c':>7} {'/runbk':>6}"
)


def row(size: int, mix: str, r: dict[str, float]) -> str:
    c = r["collector_s"]
    line = (
        f"{size:>5} {mix:<9} {c:>8.2f}s {r['collector_rss_mib']:>7.1f} {r['grep_c_s']:>6.2f}s "
        f"{r['runbook_s']:>6.2f}s {r['runbook_full_s']:>8.2f}s {c / r['grep_c_s']:>6.2f}x "
        f"{c / r['runbook_s']:>7.2f}x {c / r['runbook_full_s']:>6.2f}x {r['grep_fallback_s']:>6.2f}s "
        f"{r['grep_fallback_s'] / r['grep_c_s']:>6.2f}x {r['grep_fallback_rss_mib']:>6.1f} |        "
        f"{r['collector_cpu_s']:>5.2f} {r['grep_c_cpu_s']:>6.2f} {r['runbook_cpu_s']:>5.2f} "
        f"{r['collector_cpu_s'] / r['grep_c_cpu_s']:>6.2f}x {r['collector_cpu_s'] / r['runbook_cpu_s']:>5.2f}x"
    )
    if "pure_s" in r:
        line += f"  pure Python {r['pure_s']:.2f}s ({r['pure_rss_mib']:.1f} MiB)"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, action="append",
                        help="log size in MiB (repeatable; default 100 and 1024)")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES),
                        help="which logs (repeatable; default all: " + ", ".join(MIXES) + ")")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the best run is kept)")
    parser.add_argument("--dir", type=Path, default=OUT, help="where the logs are generated (cached)")
    parser.add_argument("--scratch", action="store_true",
                        help="generate into a temporary directory; delete each log once measured")
    parser.add_argument("--pure", action="store_true", help="also time the collector without grep")
    args = parser.parse_args(argv)
    sizes = args.size_mb or [100, 1024]
    mixes = args.mix or list(MIXES)
    print("collector = python -m collector summarize --log FILE --out DIR --quiet (ripgrep search); "
          "grep-fb = the same with the GNU grep fallback; ratios are collector / peer; CPU = user + "
          "system of the process and the ones it waited for; the collector uses up to 2 CPUs (a "
          "long log is read in a forked process while the other builds the runs; ripgrep and its "
          "search for the largest Pressure number run alongside), each grep one; "
          "targets at 1 GiB: /grep-c <= 2, /runbook < 1 (the runbook's four Extract Key "
          "Information greps; /rb+tim: those and its Timing Analysis), RSS < 150 MiB", flush=True)
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        where = Path(tmp) if args.scratch else args.dir
        for size in sizes:
            for mix in mixes:
                path = ensure_log(size, mix, where)
                try:
                    print(row(size, mix, measure(path, args.repeat, pure=args.pure)), flush=True)
                finally:
                    if args.scratch:
                        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
