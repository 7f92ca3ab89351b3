"""Shared fixtures: a Docker engine, the stand-in images and production-shaped stacks.

Only what every suite needs lives here; ansible/sshd fixtures belong to
``tests/integration/conftest.py``.

The suite runs in parallel (pytest-xdist, ``scripts/test.sh``), every worker a process of its
own with its own session fixtures; tests/README.md says what a test must do to be safe there.
Two hooks here shape that run:

* ``--pass parallel|serial`` (default: all) selects the tests without / with the ``serial``
  marker, so scripts/test.sh can run, alone, what must not overlap, then the rest in parallel.
* Files in :data:`WHOLE_FILE` (and every unit-test file) run on one worker, in file order
  (``xdist_group``; tests/parallel.py makes the mark work on pytest 9.2).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standin.stack import Stack, build_binary, build_images
from tests.support.stacks import StackFactory, StandinImages

REPO = Path(__file__).resolve().parent.parent

# Files whose tests must all run on one worker, in file order, and why. Every unit-test file is
# one too (module-level caches; thousands of tiny tests sent one by one would cost more than
# they run); the integration tests are sent one by one unless grouped.
WHOLE_FILE = {
    # its last test checks that the file's other tests, together, drove every exit code
    "tests/unit/test_exitcodes.py": "module-level record of the codes seen",
    # one pip install for the file's four tests (module fixture), not one per worker
    "tests/integration/test_install.py": "module-scoped install",
    # a module fixture creates one host-wide user (fixed name) and its sshd for the file
    "tests/integration/test_deploy_user.py": "module-scoped deploy user",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pass",
        dest="test_pass",
        choices=("all", "parallel", "serial"),
        default="all",
        help="parallel: only tests without the serial marker; serial: only those with it (default: all)",
    )


def _select_pass(config: pytest.Config, items: list[pytest.Item]) -> None:
    which = config.getoption("test_pass")
    if which == "all":
        return
    keep, dropped = [], []
    for item in items:
        serial = item.get_closest_marker("serial") is not None
        (keep if serial == (which == "serial") else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Group whole files and pick the pass first; once every plugin is done, record the groups."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if path in WHOLE_FILE or path.startswith("tests/unit/"):
            item.add_marker(pytest.mark.xdist_group(path))
    _select_pass(config, items)
    yield
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and GROUP_DIR_KEY in workerinput:
        from tests.parallel import record_groups

        record_groups(workerinput[GROUP_DIR_KEY], workerinput["workerid"], items)


# --- pytest-xdist (controller side); optional hooks, so a venv without xdist still runs ---

GROUP_DIR_KEY = "ingester_capture_group_dir"
_GROUP_DIR = pytest.StashKey[str]()


def _group_dir(config: pytest.Config) -> str:
    if _GROUP_DIR not in config.stash:
        from tests.parallel import new_group_dir

        config.stash[_GROUP_DIR] = new_group_dir()
    return config.stash[_GROUP_DIR]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each worker where to record the groups it collects."""
    node.workerinput[GROUP_DIR_KEY] = _group_dir(node.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: the scheduler that reads those records (see tests/parallel.py)."""
    if config.getoption("dist") != "loadgroup":
        return None
    from tests.parallel import MarkedGroupScheduling

    return MarkedGroupScheduling(config, log, _group_dir(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _GROUP_DIR in config.stash:
        shutil.rmtree(config.stash[_GROUP_DIR], ignore_errors=True)


def _engine_answers() -> bool:
    proc = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60)
    return proc.returncode == 0


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine that answers ``docker info``; starts one via setup.sh or fails loudly.

    Never skips: a suite that silently skips its Docker tests proves nothing.
    """
    if _engine_answers():
        return
    setup = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh"), "test"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if not _engine_answers():
        pytest.fail(
            "no Docker engine: `docker info` fails even after scripts/setup.sh test "
            f"(exit {setup.returncode}): {setup.stderr.strip()[-2000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def standin_images(docker_engine: None) -> StandinImages:
    """The stand-in binary and ``rsky-ingester:latest``, built once per session (cached)."""
    return StandinImages(binary=build_binary(), prod_image=build_images())


@pytest.fixture
def stack_factory(standin_images: StandinImages, tmp_path: Path) -> Iterator[StackFactory]:
    """A factory ``make(scenario, **kw) -> Stack`` laying stacks out under ``tmp_path``.

    Each stack gets a unique name prefix (unless ``name_prefix`` is given) and is torn down
    (containers, volumes, its debug image tag) after the test, pass or fail. The stack is
    laid out, not started: call ``up()``.
    """
    made: list[Stack] = []

    def make(scenario: str = "healthy", **kw: Any) -> Stack:
        prefix = kw.pop("name_prefix", None) or f"ict-{uuid.uuid4().hex[:8]}"
        stack = Stack(tmp_path / f"stack{len(made)}", scenario, name_prefix=prefix, **kw)
        made.append(stack)
        return stack

    yield make
    errors: list[str] = []
    for stack in made:
        try:
            stack.down()
        except Exception as exc:  # teardown must reach every stack
            errors.append(f"{stack.container}: {exc}")
    assert not errors, f"stack teardown failed: {errors}"
