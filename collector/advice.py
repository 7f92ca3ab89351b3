"""Words around a verdict that depend on what the real code does (issue 19), as small pure rules.

Each function reads runs or the accumulated facts and returns a sentence, or None when its case
does not apply; `diagnose` decides the verdict and calls these for its summary and next steps.
Every claim here is argued in shared/reference/rsky-ingester.md: outside restarts through the
Docker API, contained panics (one task's CRITICAL line is not the end), a write task that is gone,
labeler mode idling, redis-rs refusing a URL for something other than its scheme, a panic whose
cause is a setting, bounded channels since ea4869ca, and a host-wide OOM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .runs import ContainedPanic, Run, StartupFacts
from .sources.common import format_time

# `Starting ..` of the build whose batcher channels are bounded; the debug build (breadcrumbs,
# since bda45002) is newer, so a log with breadcrumbs comes from a bounded build.
BOUNDED_SINCE = "ea4869ca"
BATCHER_SITE = "batcher.rs:20:24"


@dataclass(frozen=True)
class Step:
    """A next step as data: what to do, the setting or code location it is about, the command
    that checks it, and whether doing it changes production."""

    text: str
    about: str | None = None
    check: str | None = None
    changes_production: bool = False


def outside_restart_reason(run: Run) -> str:
    """Why a run killed through the Docker API and started again is an outside restart."""
    code = run.exit_code if run.exit_code is not None else 137
    signals = "/".join(str(s) for s in run.kill_signals) or "?"
    if run.outside_restart == "docker restart":
        how = "a `docker restart` (kill signal " + signals + ", die, stop, start, restart)"
    else:
        how = ("a watchdog's `kill -s TERM`, `kill -s KILL` and `docker start` (kill signal " + signals
               + ", die, start)")
    return (f"exit {code}, no OOM evidence: restarted from outside through the Docker API by {how}; "
            "the start after the kill is the outsider's, not the restart policy's, and not the "
            "service's own exit")


def outside_restart_step(runs: Sequence[Run], every: float | None) -> Step:
    cadence = f" every {every:.0f} s" if every else ""
    return Step(
        f"Find who restarts the container{cadence} through the Docker API (cron, a watchdog, a "
        "health-check script, orchestration): the ingester did not exit by itself.",
        about="the host's cron and watchdogs",
        check="grep -rn 'docker \\(restart\\|kill\\|start\\)' /etc/cron* /var/spool/cron 2>/dev/null; "
              "systemctl list-timers",
    )


def contained_by_host(contained: Sequence[ContainedPanic]) -> list[ContainedPanic]:
    """The contained panics whose CRITICAL line named the host task."""
    return [cp for cp in contained if cp.host]


def stable_words(facts: StartupFacts | None, contained: Sequence[ContainedPanic], write_dead: int,
                 maxmemory: int) -> str | None:
    """What a run that did not exit still got wrong, in place of "ran steadily"."""
    if facts is not None and facts.idle is not None:
        return ("No exit and no restart in the window: the ingester idles by design: labeler mode with "
                "INGESTER_LABELER_HOSTS empty logs `No labeler hosts configured, sleeping forever` and "
                "runs no task, so it ingests nothing.")
    named = contained_by_host(contained)
    if named:
        task = named[0].task or "host"
        hosts = (facts.labeler_list if task == "labeler" else facts.relay_list) if facts else ()
        of = f" of {len(hosts)}" if hosts else ""
        when = ", ".join(f"{cp.host} at {format_time(cp.ts) or '?'}" for cp in named)
        return (f"No exit and no restart in the window, and the process kept running, but {len(named)}{of} "
                f"{task} host tasks panicked and stay dead until a restart (contained panics, each logged "
                f"CRITICAL when run_{task} awaited it): ingestion stopped from {when}.")
    if write_dead:
        redis = (f" and Redis refused {maxmemory} write(s) for its `maxmemory`" if maxmemory else "")
        return (f"No exit and no restart in the window, but the ingester ingested nothing: the write task "
                f"is gone ({write_dead} `Failed to send batch to write task: SendError {{ .. }}` errors){redis}; "
                "the process runs on and drops every batch.")
    return None


def stable_steps(facts: StartupFacts | None, write_dead: int, maxmemory: int) -> list[Step]:
    if facts is not None and facts.idle is not None:
        return [Step("Nothing to fix in the code: set INGESTER_LABELER_HOSTS (or another INGESTER_MODE) if "
                     "this service should ingest labels.", about="INGESTER_LABELER_HOSTS, INGESTER_MODE",
                     check="docker inspect -f '{{json .Config.Env}}' rust-ingester", changes_production=True)]
    if write_dead:
        why = "Redis refuses writes for its `maxmemory`" if maxmemory else "the write task ended"
        return [Step(f"Free Redis or raise its maxmemory ({why}; the write task ends silently and only a "
                     "restart of the ingester starts it again), then restart the ingester.",
                     about="Redis maxmemory", check="redis-cli INFO memory | grep -E 'used_memory:|maxmemory:'",
                     changes_production=True)]
    return []


def setting_behind_panic(run: Run) -> Step | None:
    """A panic whose cause is a setting the Configuration line shows (`batch_size: 0`)."""
    p = run.panic
    if p is None or not p.location or BATCHER_SITE not in p.location:
        return None
    if run.facts.batch_size != 0:
        return None
    return Step(
        "Set INGESTER_BATCH_SIZE to a positive number (the Configuration line shows batch_size: 0): "
        f"tokio's bounded channel asserts buffer > 0, so every host task panics at {BATCHER_SITE}; "
        "no code change is needed.",
        about="INGESTER_BATCH_SIZE", check="docker inspect -f '{{json .Config.Env}}' rust-ingester",
        changes_production=True,
    )


def redis_url_words(value: str | None, error: str) -> tuple[str, str] | None:
    """(detail, next step) when redis-rs refuses a REDIS_URL whose scheme is fine."""
    shown = f'"{value}"' if value is not None else "(value not in this log)"
    if "can't connect with TLS" in error:
        return (f"REDIS_URL={shown} asks for TLS (rediss://), but this build's redis-rs has no TLS feature "
                f"({error.strip()}): the URL is valid, the build cannot use it",
                f"Use a redis:// URL (it is {shown}) or build the image with redis-rs's TLS feature "
                "(tls-rustls or tls-native-tls); the scheme is not the problem.")
    scheme_ok = value is not None and value.startswith(("redis://", "rediss://", "unix://", "redis+unix://"))
    if "Invalid database number" in error:
        return (f"REDIS_URL={shown} has a valid scheme, but redis-rs refuses its database path "
                f"({error.strip()}): the path after host:port must be a database number",
                f"Fix the database path of REDIS_URL (it is {shown}): a number such as redis://redis:6379/0, "
                "or no path at all.")
    if scheme_ok:
        return (f"REDIS_URL={shown} has a valid scheme, but redis-rs refuses another part of it "
                f"({error.strip()}): the database path or a query parameter",
                f"Fix the part of REDIS_URL redis-rs names ({error.strip()}; it is {shown}).")
    return None


def oom_words(run: Run | None, bounded: bool, limit: int | None) -> tuple[str, Step]:
    """(summary clause, next step) for a confirmed OOM kill."""
    if run is not None and run.host_wide_oom and not limit:
        return ("the host ran out of memory and the kernel's global OOM killer killed the ingester "
                "(the container has no memory limit)",
                Step("Find what used the host's memory at the kill times (the ingester's stats samples, other "
                     "containers, other processes); a mem_limit would only make the kernel kill the ingester "
                     "sooner, not stop it.", about="the host's memory",
                     check="free -m; docker stats --no-stream; dmesg | grep -i 'out of memory'"))
    at = f" at its {limit / 2**20:.0f} MiB limit" if limit else ""
    clause = f"the kernel OOM killer killed the ingester{at} (exit 137)"
    if bounded:
        return (clause, Step(
            f"OOM kill confirmed{at}; no debug build needed. This build's batcher channels are bounded "
            f"(since {BOUNDED_SINCE}), so the memory is held elsewhere: compare the stats samples with the "
            "limit and look for what grows.", about="mem_limit",
            check="docker stats --no-stream rust-ingester"))
    return (clause, Step(
        f"OOM kill confirmed{at}; no debug build needed. Builds before {BOUNDED_SINCE} buffer without bound "
        "under Redis backpressure (unbounded batcher channels): if this image is older, deploy a newer "
        "build; otherwise compare the stats samples with mem_limit.", about="the image's commit, mem_limit",
        check="docker inspect -f '{{.Config.Image}} {{.HostConfig.Memory}}' rust-ingester",
        changes_production=False))


def pressure_words(pressure_max: int, bounded: bool) -> str:
    """The aside on climbing events_in_memory before unexplained exits."""
    if bounded:
        return (f" events_in_memory climbed (up to {pressure_max}), but in this build (bounded channels since "
                f"{BOUNDED_SINCE}) it is a counter that only a successful write decrements, not memory: only the "
                "kernel log, Docker's oom event, OOMKilled or the stats samples can show an OOM kill.")
    return (f" events_in_memory was climbing before the exits (up to {pressure_max}): in builds before "
            f"{BOUNDED_SINCE} that is the documented OOM pattern (unbounded channels), in later ones a counter; "
            "the kernel log, Docker's oom events or inspect's OOMKilled would confirm an OOM kill.")


def cancelled_reason(run: Run) -> str | None:
    """Every task handle ended in JoinError::Cancelled: not a panic, not a returned error."""
    if not run.cancelled_tasks or run.host_task_panics:
        return None
    task = run.task or "host"
    return (f"every {task} task was cancelled (JoinError::Cancelled, {run.cancelled_tasks} task(s)), "
            f"not a panic and not a returned error: run_{task} then returned Err(All {task} tasks exited)")


# What each kind of next step is about, the command that checks it, and whether doing it changes
# production, keyed by how the step's text starts (every step `diagnose` writes starts one way).
_ENV = "docker inspect -f '{{json .Config.Env}}' <container>"
_KINDS: tuple[tuple[str, str | None, str | None, bool], ...] = (
    ("Deploy the debug image", "the debug image (capture_mode=capture)",
     "ansible-playbook capture.yml -e capture_mode=capture --check", True),
    ("Set INGESTER_MODE", "INGESTER_MODE", _ENV, True),
    ("Set INGESTER_RELAY_HOSTS", "INGESTER_RELAY_HOSTS", _ENV, True),
    ("Set METRICS_PORT", "METRICS_PORT", _ENV, True),
    ("Set INGESTER_BATCH_SIZE", "INGESTER_BATCH_SIZE", _ENV, True),
    ("Fix REDIS_URL", "REDIS_URL", _ENV, True),
    ("Fix the database path of REDIS_URL", "REDIS_URL", _ENV, True),
    ("Fix the part of REDIS_URL", "REDIS_URL", _ENV, True),
    ("Use a redis:// URL", "REDIS_URL (or the image's redis-rs TLS feature)", _ENV, True),
    ("Fix the setting the error names", "the service's environment", _ENV, True),
    ("Check the service's environment", "the service's environment", _ENV, True),
    ("Fix the image", "the image's build (base image, linking)",
     "docker run --rm --entrypoint /lib64/ld-linux-x86-64.so.2 <image> --list /usr/local/bin/ingester", True),
    ("Nothing to fix in the code", "INGESTER_LABELER_HOSTS, INGESTER_MODE", _ENV, True),
    ("Free Redis or raise its maxmemory", "Redis maxmemory",
     "redis-cli INFO memory | grep -E 'used_memory:|maxmemory:'", True),
    ("OOM kill confirmed", "mem_limit and the image's commit",
     "docker inspect -f '{{.Config.Image}} {{.HostConfig.Memory}} {{.State.OOMKilled}}' <container>", False),
    ("Find what used the host's memory", "the host's memory",
     "free -m; docker stats --no-stream; dmesg -T | grep -i 'out of memory'", False),
    ("Find who restarts the container", "the host's cron, watchdogs and automation",
     "docker events --filter container=<container> --filter event=kill --filter event=start; "
     "grep -rn docker /etc/cron* /var/spool/cron 2>/dev/null", False),
    ("Nothing in Docker sent the kill", "the host's processes and audit log",
     "ausearch -sc kill 2>/dev/null | tail; grep -rn kill /etc/cron* 2>/dev/null", False),
    ("Find the client calling the Docker API kill", "the Docker API's clients",
     "docker events --filter container=<container> --filter event=kill", False),
    ("Capture docker events", "docker events during the window",
     "docker events --filter container=<container> --format '{{json .}}'", False),
    ("Capture the kernel log", "the kernel log", "dmesg -T | grep -iE 'oom|killed process'", False),
    ("Find what cancels the task handles", "the code that aborts JoinHandles", "git grep -n 'abort()'", False),
    ("Review main()", "rsky-ingester/src/bin/ingester.rs (main)", "git grep -n 'EXIT PATH' rsky-ingester/src", False),
    ("Review the connection error handling", "the host tasks' run loops (firehose.rs, backfill.rs, labeler.rs)",
     "git grep -n 'return' rsky-ingester/src/firehose.rs rsky-ingester/src/backfill.rs rsky-ingester/src/labeler.rs",
     False),
    ("Check Redis health", "Redis", "redis-cli INFO | grep -E 'maxmemory|used_memory:|rejected'", False),
    ("Review the run loop", "the host tasks' run loops", "git grep -n 'break\\|return Ok' rsky-ingester/src", False),
    ("No restart seen", None, "docker inspect -f '{{.RestartCount}} {{.State.StartedAt}}' <container>", False),
)


def describe(text: str) -> Step:
    """A next step's text as data: `Fix the panic at <location>` is about that location."""
    for prefix in ("Fix the panic at ", "Fix the contained panic at "):
        if text.startswith(prefix):
            where = text[len(prefix):].split(":", 3)
            loc = ":".join(where[:3]).rstrip(".") if len(where) >= 3 else None
            check = f"git grep -n '' -- {where[0]} | sed -n '{where[1]}p'" if loc else None
            return Step(text, about=loc, check=check, changes_production=False)
    for prefix, about, check, changes in _KINDS:
        if text.startswith(prefix):
            return Step(text, about, check, changes)
    return Step(text)
