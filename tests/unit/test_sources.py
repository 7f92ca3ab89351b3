"""Readers for the small bundle files: events, stats, inspect, kernel log, manifest, host."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from collector.errors import BundleError
from collector.runs import Cite, Run, StartupFacts
from collector.sources.bundle_meta import Manifest, parse_host, parse_manifest
from collector.sources.common import Problem, parse_size, parse_time, quick_init
from collector.sources.dmesg import KernelOom, parse_dmesg
from collector.sources.events import DockerEvent, parse_events
from collector.sources.inspect import Inspect, parse_inspect
from collector.sources.logs import RECORD_TYPES
from collector.sources.stats import StatsSample, parse_stats

CID = "d04abef731b2b34dd28644123c450ef044706836a48b3cf9c0204b3ff4264f27"


@pytest.mark.parametrize("cls", [*RECORD_TYPES, Cite, Run, StartupFacts], ids=lambda c: c.__name__)
def test_quick_init_keeps_the_dataclass(cls: type) -> None:
    """The records and runs built with `quick_init` take the same arguments as the dataclass's own
    `__init__` would, keep their defaults, and stay frozen."""
    own = dataclasses.fields(cls)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in own]
    for p, f in zip(params, own, strict=True):
        assert p.default is (inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
    values = {f.name: (f.default if f.default is not dataclasses.MISSING else object()) for f in own}
    rec = cls(**values)
    assert vars(rec) == values
    assert rec == cls(*values.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(rec, own[0].name, None)


def test_quick_init_refuses_what_it_cannot_copy() -> None:
    @dataclasses.dataclass
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, Factory, Post):
        with pytest.raises(TypeError, match="not a plain frozen dataclass"):
            quick_init(cls)


def test_time_and_size() -> None:
    assert parse_time("2026-11-29T10:00:00.123456789Z") == pytest.approx(1795946400.123456789)
    assert parse_time("2026-11-29T11:00:00+01:00") == 1795946400.0
    assert parse_time("2026-11-29T10:00:00+0000") == 1795946400.0
    assert parse_time("not a time") is None
    assert parse_size("12.5MiB") == int(12.5 * 2**20)
    assert parse_size("1.2GB") == 1_200_000_000
    assert parse_size("0B") == 0
    assert parse_size("lots") is None


def test_events() -> None:
    lines = [
        json.dumps({"Type": "container", "Action": "die", "Actor": {"ID": CID,
                    "Attributes": {"exitCode": "137", "name": "rust-ingester"}},
                    "time": 1, "timeNano": 1_500_000_000}),
        json.dumps({"Type": "container", "Action": "kill", "Actor": {"ID": CID,
                    "Attributes": {"signal": "9"}}, "time": 2}),
        json.dumps({"Type": "network", "Action": "connect", "time": 3}),
        "{not json",
        "[]",
    ]
    out = list(parse_events(lines))
    assert isinstance(out[0], DockerEvent) and out[0].exit_code == 137 and out[0].time == 1.5
    assert isinstance(out[1], DockerEvent) and out[1].signal == 9 and out[1].action == "kill"
    assert [type(o).__name__ for o in out[2:]] == ["Problem", "Problem"]


def test_stats() -> None:
    line = json.dumps({"ts": "2026-11-29T10:00:00Z", "epoch": 5.0, "stats": {
        "MemUsage": "12.5MiB / 64MiB", "MemPerc": "19.53%", "CPUPerc": "0.10%"}})
    (s,) = parse_stats([line])
    assert isinstance(s, StatsSample)
    assert (s.mem_bytes, s.limit_bytes, s.mem_percent) == (int(12.5 * 2**20), 64 * 2**20, 19.53)
    (bad,) = parse_stats(['{"epoch": 1}'])
    assert isinstance(bad, Problem)
    (no_epoch,) = parse_stats([json.dumps({"ts": "2026-11-29T10:00:00Z", "stats": {}})])
    assert isinstance(no_epoch, StatsSample) and no_epoch.epoch == 1795946400.0


def test_inspect() -> None:
    doc = [{"Id": CID, "Name": "/rust-ingester", "RestartCount": 7,
            "State": {"Status": "running", "Running": True, "OOMKilled": True, "Pid": 42,
                      "ExitCode": 137, "FinishedAt": "2026-11-29T10:00:00Z",
                      "StartedAt": "0001-01-01T00:00:00Z"},
            "HostConfig": {"Memory": 2147483648, "RestartPolicy": {"Name": "unless-stopped"}},
            "Config": {"Image": "rsky-ingester:debug",
                       "Env": ["INGESTER_MODE=all", "INGESTER_LABELER_HOSTS="]}}]
    i = parse_inspect(json.dumps(doc))
    assert isinstance(i, Inspect)
    assert (i.name, i.restart_count, i.memory_limit, i.oom_killed) == (
        "rust-ingester", 7, 2147483648, True)
    assert i.started_at is None and i.finished_at == 1795946400.0
    assert (i.mode, i.labeler_hosts) == ("all", False)
    assert isinstance(parse_inspect("[]"), Problem)
    assert isinstance(parse_inspect("{{"), Problem)
    assert isinstance(parse_inspect("42"), Problem)


def test_kernel_log_styles_and_cgroups() -> None:
    lines = [
        f"[ 1234.500000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={CID},"
        f"mems_allowed=0,oom_memcg=/docker/{CID},task_memcg=/docker/{CID},task=ingester,"
        "pid=4242,uid=0",
        "[ 1234.500100] Memory cgroup out of memory: Killed process 4242 (ingester) "
        "total-vm:337672kB, anon-rss:64896kB, file-rss:1108kB, shmem-rss:0kB, UID:0",
        f"[Sun Nov 29 10:00:00 2026] oom-kill:constraint=CONSTRAINT_MEMCG,"
        f"oom_memcg=/system.slice/docker-{CID}.scope,"
        f"task_memcg=/system.slice/docker-{CID}.scope,task=ingester,pid=7,uid=0",
        "2026-11-29T10:00:01+0000 host kernel: Out of memory: Killed process 9 (java) "
        "total-vm:1kB",
        "2026-11-29T10:00:02,123456+00:00 host kernel: ingester invoked oom-killer: "
        "gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        "[ 1.0] eth0: link up",
        "Memory cgroup out of memory: Killed process 1 (ingester)",
    ]
    out = list(parse_dmesg(lines))
    assert all(isinstance(k, KernelOom) for k in out)
    assert [(k.kind, k.clock, k.pid, k.comm) for k in out] == [
        ("constraint", "boot", 4242, "ingester"),
        ("memcg-killed", "boot", 4242, "ingester"),
        ("constraint", "wall", 7, "ingester"),
        ("host-killed", "wall", 9, "java"),
        ("invoked", "wall", None, "ingester"),
        ("memcg-killed", None, 1, "ingester"),
    ]
    assert out[0].container_ids == (CID,) and out[2].container_ids == (CID,)
    assert out[2].t == 1795946400.0
    assert out[4].t == pytest.approx(1795946402.123456)


def test_manifest_versions() -> None:
    m = parse_manifest(json.dumps({"schema_version": 1, "files": [
        {"path": "logs/ingester.log", "sha256": "ab", "size": 3, "exit_code": 0,
         "truncated": True}], "missing": ["dmesg.txt"]}))
    assert isinstance(m, Manifest)
    assert m.entries[0].truncated and m.missing == ("dmesg.txt",)
    with pytest.raises(BundleError, match="schema_version 2"):
        parse_manifest(json.dumps({"schema_version": 2, "files": []}))
    assert isinstance(parse_manifest("garbage"), Problem)


def test_host_and_window() -> None:
    info, problems = parse_host(
        json.dumps({"boot_epoch": 100.5, "container_id": CID, "window_start_epoch": 1}),
        json.dumps({"window_start_epoch": 2, "window_end_epoch": 3, "restarts": 4,
                    "ended_by": "restarts"}),
    )
    assert (info.boot_epoch, info.window_start, info.window_end, info.restarts_seen) == (
        100.5, 2.0, 3.0, 4)
    assert problems == []
    _, problems = parse_host("nope", None)
    assert [p.source for p in problems] == ["host.json"]
