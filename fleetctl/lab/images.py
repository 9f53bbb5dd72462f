"""Small, reproducible stand-in images for the lab registry.

Each image is one gzipped layer (static busybox plus an app script) and a
config, pushed straight to the registry with the Docker Registry HTTP API v2.
Layers and configs are byte-for-byte reproducible, so a tag's digest is the
same on every run and machine; the image platform is written in its config.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from fleetctl.errors import LabError

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CREATED = "2025-01-01T00:00:00Z"
APPLETS = ("sh", "ash", "cat", "echo", "printf", "sleep", "wget", "httpd", "mkdir", "date",
           "env", "ls", "ps", "kill", "true", "false", "grep", "sed", "nc", "id", "hostname",
           "head", "wc", "awk")

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: app -> (script, image config); the script is installed at ``Entry``. Like the
#: upstream images, they have a CMD and no ENTRYPOINT.
APPS = {
    "ollama": ("fake-ollama.sh", {
        "Cmd": ["/usr/bin/ollama", "serve"],
        "Env": [PATH, "OLLAMA_HOST=0.0.0.0:11434"],
        "ExposedPorts": {"11434/tcp": {}},
        "Entry": "/usr/bin/ollama",
    }),
    "open-webui": ("fake-webui.sh", {
        "Cmd": ["/app/backend/start.sh"],
        "Env": [PATH, "PORT=8080"],
        "ExposedPorts": {"8080/tcp": {}},
        "Entry": "/app/backend/start.sh",
    }),
}


@dataclass(frozen=True)
class LabImage:
    """One tag to push: where, which app, which version, how it behaves."""

    repo: str
    tag: str
    app: str
    version: str
    mode: str = "ok"
    platforms: tuple[str, ...] = ("native",)

    @property
    def arches(self) -> list[str]:
        """Docker architectures of the tag (``native``: this machine's); several make a
        manifest list. Anything but the machine's own is metadata only."""
        return list(dict.fromkeys(machine_arch() if p == "native" else p
                                  for p in self.platforms))


def machine_arch() -> str:
    """This machine's architecture in Docker's words (amd64, arm64)."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def load_images() -> list[LabImage]:
    """The lab's image list (``apps.yml``)."""
    raw = yaml.safe_load((resources.files("fleetctl.lab") / "apps.yml").read_text())
    return [LabImage(**{k: tuple(map(str, v)) if isinstance(v, list) else str(v)
                        for k, v in entry.items()}) for entry in raw["images"]]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_layer(app: str, busybox: Path) -> tuple[bytes, str]:
    """The app's root filesystem as a reproducible gzipped tar, and its diff id."""
    script_name, config = APPS[app]
    script = (resources.files("fleetctl.lab") / script_name).read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, *, data: bytes | None = None, mode: int = 0o644,
                link: str | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            if data is None and link is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
            else:
                info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for d in ("app", "app/backend", "bin", "etc", "tmp", "usr", "usr/bin", "www"):
            add(d)
        add("bin/busybox", data=busybox.read_bytes(), mode=0o755)
        for applet in APPLETS:
            add(f"bin/{applet}", link="busybox")
        add("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n")
        add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
                               b"nobody:x:65534:65534:nobody:/:/bin/false\n")
        add(config["Entry"].lstrip("/"), data=script, mode=0o755)
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6) as z:
        z.write(tar_bytes)
    return gz.getvalue(), _digest(tar_bytes)


def image_config(image: LabImage, diff_id: str, arch: str) -> bytes:
    """The image config JSON: platform, command, env, labels."""
    _, app = APPS[image.app]
    env = [*app["Env"], f"FLEETLAB_VERSION={image.version}", f"FLEETLAB_MODE={image.mode}"]
    config = {
        "architecture": arch, "os": "linux", "created": CREATED,
        "config": {
            "Cmd": app["Cmd"], "Env": env,
            "ExposedPorts": app["ExposedPorts"],
            "Labels": {"org.opencontainers.image.version": image.version,
                       "fleetlab.mode": image.mode, "fleetlab.tag": image.tag},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "fleetctl lab"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


class RegistryPusher:
    """Pushes blobs and manifests to a registry over the v2 HTTP API (no auth)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def _request(self, method: str, url: str, data: bytes | None = None,
                 headers: dict | None = None) -> urllib.request.addinfourl:
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            return urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code == 404:
                return exc
            body = exc.read().decode(errors="replace")[:200]
            raise LabError(f"registry {method} {url}: HTTP {exc.code} {body}") from None
        except urllib.error.URLError as exc:
            raise LabError(f"registry {self.base} unreachable: {exc.reason}") from None

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = _digest(data)
        if self._request("HEAD", f"{self.base}/v2/{repo}/blobs/{digest}").status == 200:
            return digest
        start = self._request("POST", f"{self.base}/v2/{repo}/blobs/uploads/")
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        self._request("PUT", f"{location}{sep}digest={digest}", data,
                      {"Content-Type": "application/octet-stream"})
        return digest

    def push_manifest(self, repo: str, ref: str, manifest: bytes,
                      media_type: str = MANIFEST_V2) -> str:
        self._request("PUT", f"{self.base}/v2/{repo}/manifests/{ref}", manifest,
                      {"Content-Type": media_type})
        return _digest(manifest)


def push_images(registry_url: str, busybox: Path, images: list[LabImage]) -> dict[str, str]:
    """Push every image (a manifest list where it has several platforms); return
    ``repo:tag -> digest`` of what the tag points at."""
    pusher = RegistryPusher(registry_url)
    layers = {app: build_layer(app, busybox) for app in {i.app for i in images}}
    digests = {}
    for image in images:
        layer, diff_id = layers[image.app]
        pusher.push_blob(image.repo, layer)
        entries = []
        for arch in image.arches:
            config = image_config(image, diff_id, arch)
            pusher.push_blob(image.repo, config)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": MANIFEST_V2,
                "config": {"mediaType": CONFIG_V1, "size": len(config),
                           "digest": _digest(config)},
                "layers": [{"mediaType": LAYER_GZIP, "size": len(layer),
                            "digest": _digest(layer)}],
            }, indent=3).encode()
            if len(image.arches) == 1:
                digests[f"{image.repo}:{image.tag}"] = pusher.push_manifest(
                    image.repo, image.tag, manifest)
                break
            entries.append({"mediaType": MANIFEST_V2, "size": len(manifest),
                            "digest": pusher.push_manifest(image.repo, _digest(manifest),
                                                           manifest),
                            "platform": {"architecture": arch, "os": "linux"}})
        else:
            index = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_LIST,
                                "manifests": entries}, indent=3).encode()
            digests[f"{image.repo}:{image.tag}"] = pusher.push_manifest(
                image.repo, image.tag, index, MANIFEST_LIST)
    return digests
