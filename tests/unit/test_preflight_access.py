"""Pre-flight's access checks and the host side's private files, without a Docker engine.

The refusal itself (a deploy user outside the docker group, no become) is driven for real over
SSH in tests/integration/test_deploy_user.py; here are the pieces it is made of.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.modules.preflight import (  # noqa: E402
    docker_socket,
    permission_problem,
    socket_problem,
)


def test_the_socket_the_docker_cli_talks_to() -> None:
    assert docker_socket({}) == "/var/run/docker.sock"
    assert docker_socket({"DOCKER_HOST": ""}) == "/var/run/docker.sock"
    assert docker_socket({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}) == "/run/user/1000/docker.sock"
    # Another transport: nothing to check on this host's file system.
    assert docker_socket({"DOCKER_HOST": "tcp://127.0.0.1:2375"}) is None
    assert docker_socket({"DOCKER_HOST": "ssh://deploy@host"}) is None


def test_a_socket_that_answers_or_is_missing_is_no_access_problem(tmp_path: Path) -> None:
    assert socket_problem(None, "deploy") is None
    assert socket_problem(str(tmp_path / "missing.sock"), "deploy") is None
    path = tmp_path / "d.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        assert socket_problem(str(path), "deploy") is None
    # Nobody listens any more: refused, not denied; the engine check says more than this one could.
    assert socket_problem(str(path), "deploy") is None


def test_a_path_the_user_may_not_read_says_become() -> None:
    exc = PermissionError(13, "Permission denied", "/var/lib/ingester-capture/0123456789ab/swap.json")
    line = permission_problem(exc, "deploy")
    assert line == (
        "user deploy cannot read /var/lib/ingester-capture/0123456789ab/swap.json (permission denied): "
        "run with become (ansible_become=true) or give the user access to it"
    )


def test_host_files_are_private_whatever_the_login_umask(tmp_path: Path) -> None:
    # In a child: the umask is the process's, and pytest's must stay as it was.
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); os.umask(0o022)\n"
        "from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state\n"
        "host_state.private_files()\n"
        "from pathlib import Path; top = Path(sys.argv[2])\n"
        "(top / 'state' / 'key' / 'work').mkdir(parents=True)\n"
        "(top / 'state' / 'key' / 'work' / 'events.jsonl').write_text('{}')\n"
        "import subprocess; subprocess.run(['sh', '-c', 'echo x > \"$0\"', str(top / 'state/key/work/child.log')])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(REPO / "collections"), str(tmp_path)], check=True)
    found = {
        str(path.relative_to(tmp_path)): stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "state").rglob("*")
    }
    found["state"] = stat.S_IMODE((tmp_path / "state").stat().st_mode)
    assert found == {
        "state": 0o700,
        "state/key": 0o700,
        "state/key/work": 0o700,
        "state/key/work/events.jsonl": 0o600,
        "state/key/work/child.log": 0o600,
    }


def test_the_engine_api_is_asked_only_where_the_cli_would_go(tmp_path: Path, monkeypatch: Any) -> None:
    """The one-shot stats sample goes to the CLI's own socket, never to a daemon the CLI would not
    use: another DOCKER_HOST transport, a chosen context, a missing socket mean the CLI instead."""
    import http.server
    import threading

    from ansible_collections.rsky.ingester_capture.plugins.module_utils import docker_cli

    path = tmp_path / "engine.sock"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"asked": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    class UnixServer(http.server.HTTPServer):
        address_family = socket.AF_UNIX

        def server_bind(self) -> None:
            self.socket.bind(str(path))

        def get_request(self) -> Any:
            conn, _ = self.socket.accept()
            return conn, ("local", 0)

    server = UnixServer(str(path), Handler)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
        monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        status, body, where = docker_cli.engine_get("/v1.41/containers/x/stats?one-shot=true")
        assert status == 200 and b"one-shot=true" in body and where.startswith(f"unix://{path}/")
        # A context chosen in the environment, or in the CLI's config: the CLI knows where it goes.
        monkeypatch.setenv("DOCKER_CONTEXT", "remote")
        assert docker_cli.engine_get("/_ping")[0] is None
        monkeypatch.delenv("DOCKER_CONTEXT")
        (tmp_path / "cfg").mkdir()
        (tmp_path / "cfg" / "config.json").write_text('{"currentContext": "prod"}')
        assert docker_cli.engine_get("/_ping")[0] is None
        (tmp_path / "cfg" / "config.json").write_text('{"currentContext": "default"}')
        assert docker_cli.engine_get("/_ping")[0] == 200
        for host in ("tcp://127.0.0.1:2375", "ssh://deploy@host", f"unix://{tmp_path / 'none.sock'}"):
            monkeypatch.setenv("DOCKER_HOST", host)
            assert docker_cli.engine_get("/_ping") == (None, b"", "")
    finally:
        server.shutdown()
        server.server_close()
