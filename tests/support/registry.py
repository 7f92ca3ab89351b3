"""An image pinned by digest, without reaching any registry: push to one on 127.0.0.1.

A compose file that pins ``image: repo@sha256:...`` only runs where the engine knows that digest,
and an engine learns a digest only by pushing or pulling through a registry. This is the least
of one (the Docker Registry HTTP API v2 calls ``docker push`` makes, blobs kept in memory),
listening on a loopback port for the length of one push. Afterwards the engine resolves the
``repo@sha256:...`` reference locally; nothing is ever pulled.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from standin.stack import run

_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/?]*)$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")


class _Registry(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    blobs: ClassVar[dict[str, bytes]] = {}
    uploads: ClassVar[dict[str, bytearray]] = {}
    manifests: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def log_message(self, format: str, *args: object) -> None:
        return

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(code)
        for key, value in {"Docker-Distribution-API-Version": "registry/2.0", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in ("/v2/", "/v2"):
            self._reply(200, {"Content-Type": "application/json"}, b"{}")
            return
        manifest = _MANIFEST.match(path)
        if manifest and manifest.group("ref") in self.manifests:
            media, body = self.manifests[manifest.group("ref")]
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self._reply(200, {"Content-Type": media, "Docker-Content-Digest": digest}, body)
            return
        blob = _BLOB.match(path)
        if blob and blob.group("digest") in self.blobs:
            data = self.blobs[blob.group("digest")]
            self._reply(200, {"Docker-Content-Digest": blob.group("digest")}, data)
            return
        self._reply(404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._body()
        upload = _UPLOADS.match(self.path.split("?")[0])
        if not upload:
            self._reply(404)
            return
        ident = uuid.uuid4().hex
        self.uploads[ident] = bytearray()
        where = f"/v2/{upload.group('name')}/blobs/uploads/{ident}"
        self._reply(202, {"Location": where, "Range": "0-0", "Docker-Upload-UUID": ident})

    def do_PATCH(self) -> None:
        upload = _UPLOADS.match(self.path.split("?")[0])
        data = self._body()
        if not upload or upload.group("id") not in self.uploads:
            self._reply(404)
            return
        buffer = self.uploads[upload.group("id")]
        buffer += data
        where = f"/v2/{upload.group('name')}/blobs/uploads/{upload.group('id')}"
        self._reply(202, {"Location": where, "Range": f"0-{max(len(buffer) - 1, 0)}"})

    def do_PUT(self) -> None:
        path, _, query = self.path.partition("?")
        data = self._body()
        upload = _UPLOADS.match(path)
        if upload and upload.group("id") in self.uploads:
            digest = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("digest", "").replace("%3A", ":")
            blob = bytes(self.uploads.pop(upload.group("id")) + data)
            if "sha256:" + hashlib.sha256(blob).hexdigest() != digest:
                self._reply(400, {}, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
                return
            self.blobs[digest] = blob
            where = f"/v2/{upload.group('name')}/blobs/{digest}"
            self._reply(201, {"Location": where, "Docker-Content-Digest": digest})
            return
        manifest = _MANIFEST.match(path)
        if manifest:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            media = self.headers.get("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
            self.manifests[manifest.group("ref")] = (media, data)
            self.manifests[digest] = (media, data)
            where = f"/v2/{manifest.group('name')}/manifests/{digest}"
            self._reply(201, {"Location": where, "Docker-Content-Digest": digest})
            return
        self._reply(404)


def pin_by_digest(image: str, repository: str) -> tuple[str, str]:
    """Push ``image`` as ``127.0.0.1:<port>/<repository>:pinned``; return (the ``repo@sha256:``
    reference the engine now resolves locally, the tag to remove afterwards)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tag = f"127.0.0.1:{server.server_address[1]}/{repository}:pinned"
        run(["docker", "tag", image, tag])
        run(["docker", "push", tag], timeout=120)
        digests = json.loads(run(["docker", "image", "inspect", tag]).stdout)[0].get("RepoDigests") or []
    finally:
        server.shutdown()
        server.server_close()
    repo = tag.rsplit(":", 1)[0]
    pinned = [d for d in digests if d.startswith(repo + "@sha256:")]
    if not pinned:
        raise RuntimeError(f"the push of {tag} left no digest for {repo}: {digests}")
    return pinned[0], tag
