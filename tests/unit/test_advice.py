# ruff: noqa: E501  (one fixture's words per line)
"""The words around a verdict (collector/advice.py, issue 19): what each fixture's summary and next
steps must say and must not say, argued from the reference like the answer key (tests/answers/);
the verdict itself is the key's."""

from __future__ import annotations

import json

import pytest

from tests.support.answers import summarize_fixture

# fixture -> (summary must hold, summary must not hold, next steps must hold, next steps must not hold)
WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "bundles/handmade-docker-restart-loop": (("Docker API", "docker restart"), ("operator",), (), ("close the incident",)),
    "bundles/handmade-watchdog-restart": (("Docker API", "kill -s KILL"), ("operator",), (), ("close the incident",)),
    "bundles/handmade-contained-critical-restart": (("firehose.rs:434:36",), ("a panic at",), (), ("Fix the panic at rsky",)),
    "logs/handmade-contained-critical.docker-ts.log": (
        ("https://relay1.us-east.bsky.network", "https://relay2.eu-west.example.net", "kept running"),
        ("ran steadily",), (), ()),
    "logs/handmade-write-task-dead.docker-ts.log": (("SendError", "maxmemory"), ("ran steadily",), ("maxmemory",), ()),
    "logs/handmade-labeler-idle.docker-ts.log": (("INGESTER_LABELER_HOSTS",), ("ran steadily",), (), ()),
    "logs/handmade-rediss-url.docker-ts.log": (("TLS",), ("is not a Redis URL",), ("TLS",), ("must be a redis:// or rediss://",)),
    "logs/handmade-redis-db-path.docker-ts.log": (("database",), ("is not a Redis URL",), ("database",), ("must be a redis://",)),
    "logs/handmade-batch-size-zero.docker-ts.log": (("batch_size: 0",), (), ("INGESTER_BATCH_SIZE",), ("Fix the panic",)),
    "logs/handmade-counter-debug.docker-ts.log": ((), ("OOM kill is likely", "memory growth"), (), ("Bound the batcher",)),
    "bundles/handmade-oom-debug-build": ((), (), (), ("Bound the batcher", "bound the batcher")),
    "bundles/handmade-host-oom-no-limit": (("no memory limit",), (), (), ("raise mem_limit",)),
    "logs/handmade-compose-project-v2.log": ((), ("rust-indexer", "rsky-indexer"), (), ()),
}


@pytest.mark.parametrize("fixture", sorted(WORDS))
def test_the_words_around_the_verdict(fixture: str) -> None:
    report = json.loads(summarize_fixture(fixture)[1])
    summary = report["verdict"]["summary"]
    steps = " ".join(report["verdict"]["next_steps"])
    must, must_not, step_must, step_must_not = WORDS[fixture]
    for w in must:
        assert w in summary, f"summary must say {w!r}: {summary}"
    for w in must_not:
        assert w not in summary, f"summary must not say {w!r}: {summary}"
    for w in step_must:
        assert w in steps, f"next steps must say {w!r}: {steps}"
    for w in step_must_not:
        assert w not in steps, f"next steps must not say {w!r}: {steps}"


def test_a_setting_that_causes_a_panic_is_the_first_step() -> None:
    report = json.loads(summarize_fixture("logs/handmade-batch-size-zero.docker-ts.log")[1])
    assert "INGESTER_BATCH_SIZE" in report["verdict"]["next_steps"][0]


@pytest.mark.parametrize("fixture", ["logs/handmade-metrics-port-repro.docker-ts.log", "recorded/config-metrics-port.log"])
def test_a_main_thread_panic_behind_a_config_error_stays_in_the_report(fixture: str) -> None:
    report = json.loads(summarize_fixture(fixture)[1])
    assert report["verdict"]["scenario"] == "config-error"
    panic = report["panic"]
    assert panic["location"] == "rsky-ingester/src/bin/ingester.rs:79:10"
    assert "METRICS_PORT" in panic["message"]
    assert panic["backtrace"]


def test_contained_panics_are_counted_with_when_each_relay_stopped() -> None:
    report = json.loads(summarize_fixture("logs/handmade-contained-critical.docker-ts.log")[1])
    contained = report["contained_panics"]
    assert len(contained) == 4
    assert [c.get("host") for c in contained] == [
        "https://relay1.us-east.bsky.network", "https://relay1.us-west.bsky.network",
        "https://atproto.africa", "https://relay2.eu-west.example.net"]


@pytest.mark.parametrize("fixture", sorted({*WORDS, "bundles/stable", "bundles/oom-kill", "bundles/config-error",
                                             "bundles/hypothetical-task-error-labeler/logs/ingester.log"}))
def test_each_next_step_is_data(fixture: str) -> None:
    report = json.loads(summarize_fixture(fixture)[1])
    v = report["verdict"]
    assert [a["step"] for a in v["advice"]] == v["next_steps"]
    for a in v["advice"]:
        assert a["about"] or a["check"], f"a step about nothing: {a['step']}"
        assert isinstance(a["changes_production"], bool)
    md, html = summarize_fixture(fixture)[2:]
    for a in v["advice"]:
        if a["check"]:
            assert a["check"].replace("|", "\\|") in md  # in a code span, whole (`|` escaped for tables)
            assert html.count("check: <code>") == sum(1 for x in v["advice"] if x["check"])
