#!/usr/bin/env bash
# The demo: a crash-looping stand-in rsky-ingester on this machine, captured and diagnosed end to
# end by `ansible-playbook capture.yml`.
#
#   scripts/demo.sh [SCENARIO]   SCENARIO: task-error (default), task-panic, host-panic,
#                                main-panic, task-ok, oom, impossible, silent-exit, healthy
#   scripts/demo.sh --down       stop and remove the demo stack
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
py=.venv/bin/python

if [ "${1:-}" = "--down" ]; then
    [ -d .demo ] && "$py" -m tests.standin.stack down --root .demo >/dev/null 2>&1 || true
    rm -rf .demo
    echo "demo: stack removed"
    exit 0
fi
scenario=${1:-task-error}

bash scripts/setup.sh demo

if [ -d .demo ]; then
    "$py" -m tests.standin.stack down --root .demo >/dev/null 2>&1 || true
    rm -rf .demo
fi
echo "demo: starting a production-shaped stack whose ingester crash-loops ($scenario)"
"$py" -m tests.standin.stack up --root .demo --prefix demo --scenario "$scenario" --exit-after-ms 4000 >/dev/null
sleep 6
docker ps -a --filter name=demo-rust-ingester --format 'demo: {{.Names}}: {{.Status}} ({{.Image}})'

echo "demo: running ansible-playbook -i inventory/demo.yml capture.yml"
status=0
.venv/bin/ansible-playbook -i inventory/demo.yml capture.yml || status=$?

latest=$(ls -1d captures/demo/*/ 2>/dev/null | tail -n 1)
if [ -n "$latest" ]; then
    echo
    echo "demo: bundle  ${latest%/}"
    echo "demo: report  ${latest}report.md  (also report.html, report.json)"
fi
echo "demo: roll back with: .venv/bin/ansible-playbook -i inventory/demo.yml playbooks/rollback.yml"
echo "demo: remove the stack with: scripts/demo.sh --down"
exit "$status"
