#!/usr/bin/env bash
# Every test and every linter, after making sure the machine has what they need.
#   scripts/test.sh              the whole suite (lint, unit, integration)
#   scripts/test.sh -m 'not integration'   extra arguments go to pytest (to both passes)
#   INGESTER_CAPTURE_TEST_WORKERS=N scripts/test.sh   N parallel workers (default 4; 0: serial)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh test

echo "== lint"
.venv/bin/ruff check collector tests benchmarks plugins standin
# The host side runs on the targets' Python: 3.8 and newer, standard library only.
.venv/bin/vermin -q -t=3.8- --no-tips --violations --eval-annotations plugins
.venv/bin/mypy
(cd collections && ../.venv/bin/mypy --config-file ../plugins/mypy.ini -p ansible_collections.rsky.ingester_capture.plugins)
.venv/bin/yamllint -s .
.venv/bin/ansible-lint --offline -q

echo "== ansible-test sanity"
# Galaxy's bar, on the collection as it ships (scripts/sanity.sh builds it and tests that).
scripts/sanity.sh

echo "== tests"
# In parallel: the integration tests mostly wait (capture windows, restart loops, plays), so
# more workers than cores overlap the waiting. Tests marked `serial` run first, alone, in a
# pass of their own. INGESTER_CAPTURE_TEST_WORKERS=0: one plain pytest, nothing in parallel.
workers=${INGESTER_CAPTURE_TEST_WORKERS:-4}
no_tests() {
    echo "test: pytest collected no tests: that is a failure" >&2
    exit 1
}
if [ "$workers" = 0 ]; then
    status=0
    .venv/bin/pytest "$@" || status=$?
    if [ "$status" = 5 ]; then
        no_tests
    fi
    exit "$status"
fi
# Exit 5 (nothing selected) is fine for one pass, a failure for both. The parallel pass runs
# last so that the run's closing line counts what it ran.
serial=0
.venv/bin/pytest --pass serial "$@" || serial=$?
parallel=0
.venv/bin/pytest -n "$workers" --dist loadgroup --no-loadscope-reorder --pass parallel "$@" || parallel=$?
if [ "$serial" = 5 ] && [ "$parallel" = 5 ]; then
    no_tests
fi
for status in "$serial" "$parallel"; do
    if [ "$status" != 0 ] && [ "$status" != 5 ]; then
        exit "$status"
    fi
done
exit 0
