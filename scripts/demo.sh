#!/usr/bin/env bash
# The demo: a crash-looping stand-in rsky-ingester on this machine, captured and diagnosed end to
# end by `ansible-playbook capture.yml`.
#
#   scripts/demo.sh [SCENARIO [BUILD]]
#       SCENARIO, following the real code: all-panicked (default), contained-panic, retry-errors,
#                 config-redis-url, config-no-relays, config-unknown-mode, config-metrics-port,
#                 binary-cannot-start, oom, leak, healthy;
#       hypothetical (the seed's paths): hypothetical-task-error, hypothetical-task-panic,
#                 hypothetical-host-panic, hypothetical-main-panic, hypothetical-task-ok,
#                 hypothetical-single-mode, hypothetical-impossible, hypothetical-silent-exit,
#                 hypothetical-cancelled
#       BUILD: the production image's generation, oldest | hook (default) | debug
#   scripts/demo.sh --down       stop and remove the demo stack
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
py=.venv/bin/python

if [ "${1:-}" = "--down" ]; then
    [ -d .demo ] && "$py" -m standin.stack down --root .demo >/dev/null 2>&1 || true
    rm -rf .demo
    echo "demo: stack removed"
    exit 0
fi
scenario=${1:-all-panicked}
build=${2:-}

bash scripts/setup.sh demo

if [ -d .demo ]; then
    "$py" -m standin.stack down --root .demo >/dev/null 2>&1 || true
    rm -rf .demo
fi
echo "demo: starting a production-shaped stack whose ingester crash-loops ($scenario${build:+, $build build})"
"$py" -m standin.stack up --root .demo --prefix demo --scenario "$scenario" ${build:+--build "$build"} --exit-after-ms 4000 >/dev/null
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
