#!/usr/bin/env bash
# Every test and every linter, after making sure the machine has what they need.
#   scripts/test.sh              the whole suite (lint, unit, integration)
#   scripts/test.sh -m 'not integration'   extra arguments go to pytest
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh test

echo "== lint"
.venv/bin/ruff check collector tests benchmarks plugins
# The host side runs on the targets' Python: 3.8 and newer, standard library only.
.venv/bin/vermin -q -t=3.8- --no-tips --violations --eval-annotations plugins
.venv/bin/mypy
(cd collections && ../.venv/bin/mypy --config-file ../plugins/mypy.ini -p ansible_collections.rsky.ingester_capture.plugins)
.venv/bin/yamllint -s .
.venv/bin/ansible-lint --offline -q

echo "== tests"
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" = 5 ]; then
    echo "test: pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
