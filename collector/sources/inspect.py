"""Reader for `inspect.json` / `inspect-pre.json`: `docker inspect` output (a JSON list)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sources.common import Problem, load_json, parse_time

SOURCE = "inspect.json"


@dataclass(frozen=True)
class Inspect:
    """What `docker inspect` says about the container; only the LAST exit is kept by Docker."""

    container_id: str | None
    name: str | None
    image: str | None
    status: str | None
    running: bool | None
    restarting: bool | None
    oom_killed: bool | None
    pid: int | None
    exit_code: int | None
    error: str | None
    started_at: float | None
    finished_at: float | None
    restart_count: int | None
    memory_limit: int | None
    restart_policy: str | None
    mode: str | None
    labeler_hosts: bool | None
    source: str = field(compare=False)


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None


def _opt_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: object) -> float | None:
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    return parse_time(value)


def parse_inspect(text: str, source: str = SOURCE) -> Inspect | Problem:
    """The first container in the list, or a `Problem` saying why there is none."""
    try:
        obj = load_json(text)
    except (ValueError, RecursionError):
        return Problem(source, "not valid JSON")
    if isinstance(obj, list):
        if not obj:
            return Problem(source, "empty list: the container did not exist")
        obj = obj[0]
    if not isinstance(obj, dict):
        return Problem(source, "not a docker inspect object")
    state = obj.get("State") if isinstance(obj.get("State"), dict) else {}
    host = obj.get("HostConfig") if isinstance(obj.get("HostConfig"), dict) else {}
    config = obj.get("Config") if isinstance(obj.get("Config"), dict) else {}
    assert isinstance(state, dict) and isinstance(host, dict) and isinstance(config, dict)
    env: dict[str, str] = {}
    raw_env = config.get("Env")
    if isinstance(raw_env, list):
        for item in raw_env:
            if isinstance(item, str) and "=" in item:
                key, _, value = item.partition("=")
                env[key] = value
    policy = host.get("RestartPolicy")
    name = _opt_str(obj.get("Name"))
    labelers = env.get("INGESTER_LABELER_HOSTS")
    return Inspect(
        container_id=_opt_str(obj.get("Id")),
        name=name.lstrip("/") if name else None,
        image=_opt_str(config.get("Image")) or _opt_str(obj.get("Image")),
        status=_opt_str(state.get("Status")),
        running=_opt_bool(state.get("Running")),
        restarting=_opt_bool(state.get("Restarting")),
        oom_killed=_opt_bool(state.get("OOMKilled")),
        pid=_opt_int(state.get("Pid")),
        exit_code=_opt_int(state.get("ExitCode")),
        error=_opt_str(state.get("Error")),
        started_at=_time(state.get("StartedAt")),
        finished_at=_time(state.get("FinishedAt")),
        restart_count=_opt_int(obj.get("RestartCount")),
        memory_limit=_opt_int(host.get("Memory")),
        restart_policy=_opt_str(policy.get("Name")) if isinstance(policy, dict) else None,
        mode=env.get("INGESTER_MODE") or None,
        labeler_hosts=None if labelers is None else bool(labelers.strip()),
        source=source,
    )
