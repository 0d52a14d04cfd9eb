"""For the push command's tests: the app served over real HTTP, a fault injector, and sources
(OCI layouts and `docker save` archives) built on disk."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from tests.functional.helpers import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, digest_of


@dataclass
class Faults:
    """WSGI middleware: records every request and breaks chosen PATCHes.

    `lose[n]` for the n-th PATCH (1-based): "request" answers 502 without the app seeing the chunk
    (lost on the way in); "answer" lets the app store it, then answers 502 (lost on the way out);
    "drop" lets the app store it, then closes the connection without an answer; "forget" cancels
    the session in the app (as its expiry would) and passes the PATCH on (404 BLOB_UPLOAD_UNKNOWN).
    """

    app: Any
    lose: dict[int, str] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)
    patches: int = 0
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        with self._lock:
            self.requests.append((method, path, headers | {"content-range": headers.get("content-range", "")}, length))
            if method == "PATCH":
                self.patches += 1
            fault = self.lose.get(self.patches) if method == "PATCH" else None
        # Buffered like waitress buffers it (werkzeug's server hands out the socket, which the
        # app's adapter would read to EOF on a body-less keep-alive request).
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length else b"")
        environ["CONTENT_LENGTH"] = str(length)
        if fault == "request":
            start_response("502 Bad Gateway", [("Content-Length", "0")])
            return [b""]
        if fault in ("answer", "drop"):
            b"".join(self.app(environ, lambda *a, **k: None))
            if fault == "drop":
                self.dropped += 1
                environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                return []
            start_response("502 Bad Gateway", [("Content-Length", "0")])
            return [b""]
        if fault == "forget":
            cancel = dict(environ, REQUEST_METHOD="DELETE", CONTENT_LENGTH="0", **{"wsgi.input": io.BytesIO()})
            b"".join(self.app(cancel, lambda *a, **k: None))
        return self.app(environ, start_response)

    def patch_sizes(self) -> list[int]:
        return [length for method, _, _, length in self.requests if method == "PATCH"]

    def patch_ranges(self) -> list[str]:
        return [h["content-range"] for method, _, h, _ in self.requests if method == "PATCH"]


class Served:
    """The app on 127.0.0.1:<free port> in a thread (werkzeug's threaded server)."""

    def __init__(self, app: Any) -> None:
        self.faults = Faults(app)
        self._server = make_server("127.0.0.1", 0, self.faults, threaded=True)
        self.host = f"127.0.0.1:{self._server.server_port}"
        # Polled every 50 ms: shutdown() waits for the loop's next poll (0.5 s by default).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# Sources on disk.


@dataclass
class Image:
    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        return {digest_of(b): b for b in [self.config, *self.layers]}


def make_image(layers: list[bytes], *, layer_type: str = OCI_LAYER, arch: str = "amd64") -> Image:
    diff_ids = [digest_of(layer) for layer in layers]  # as if uncompressed: only the shape matters here
    config = json.dumps(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": digest_of(x), "size": len(x)} for x in layers],
        },
        indent=1,
    ).encode()
    return Image(manifest, config, layers)


def write_layout(root: Path, tagged: dict[str, tuple[str, bytes]], blobs: dict[str, bytes]) -> Path:
    """An OCI layout: `tagged` maps a tag to (media type, manifest or index bytes)."""
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for data in [*blobs.values(), *(body for _, body in tagged.values())]:
        (root / "blobs" / "sha256" / digest_of(data).split(":")[1]).write_bytes(data)
    entries = [
        {"mediaType": mt, "digest": digest_of(body), "size": len(body), "annotations": {
            "org.opencontainers.image.ref.name": tag, "io.containerd.image.name": f"docker.io/library/app:{tag}"}}
        for tag, (mt, body) in tagged.items()
    ]  # fmt: skip
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return root


def image_layout(root: Path, image: Image, tag: str = "v1") -> Path:
    return write_layout(root, {tag: (OCI_MANIFEST, image.manifest)}, image.blobs())


def tar_directory(directory: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return out


def legacy_docker_save(out: Path, config: bytes, layers: list[bytes], repo_tag: str) -> Path:
    """The archive `docker save` wrote before Docker 25: `<id>/layer.tar`, `<hex>.json`, manifest.json.
    The last layer is stored twice, the second time as a symlink (as docker does for a repeated layer)."""
    config_name = digest_of(config).split(":")[1] + ".json"
    names = [f"{i:064x}/layer.tar" for i in range(len(layers))]

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w") as tar:
        for name, data in zip(names, layers, strict=True):
            add(tar, name, data)
        link = tarfile.TarInfo(f"{len(layers):064x}/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, f"../{names[-1]}"
        tar.addfile(link)
        add(tar, config_name, config)
        manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": [*names[:-1], link.name]}]
        add(tar, "manifest.json", json.dumps(manifest).encode())
    return out
