#!/usr/bin/env bash
# ansible-test sanity on the collection as it ships: built from this checkout (galaxy.yml's
# allow-list) and unpacked under ansible_collections/rsky/ingester_capture, where Galaxy's import
# runs the same test. The checkout itself holds more than the collection (the collector, the
# tests, their fixtures), which is not what Galaxy gets.
# Offline: scripts/setup.sh test put ansible-test's pip bootstrap and the wheels it pins in place.
#   scripts/sanity.sh                  every sanity test
#   scripts/sanity.sh --test pylint    arguments go to ansible-test sanity
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${INGESTER_CAPTURE_VENV:-$here/.venv}
state=${INGESTER_CAPTURE_STATE:-/var/tmp/ingester-capture-dev}
wheels=$state/ansible-test-wheels
[ -f "$wheels/.stamp" ] || { echo "sanity: run scripts/setup.sh test first (no $wheels)" >&2; exit 3; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/ansible-galaxy" collection build --output-path "$work" "$here" >/dev/null 2>&1 \
    || "$venv/bin/ansible-galaxy" collection build --output-path "$work" "$here"
root=$work/ansible_collections/rsky/ingester_capture
mkdir -p "$root"
tar -xzf "$work"/rsky-ingester_capture-*.tar.gz -C "$root"
python=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$root"
# The host side runs on Python 3.8 and newer: vermin checks that in scripts/test.sh; here the
# controller's Python compiles and imports the plugins.
"$venv/bin/ansible-test" sanity --color no --python "$python" "$@"
