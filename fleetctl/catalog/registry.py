"""A Docker Registry HTTP API v2 client: tags, manifests and manifest lists, with
each platform's digest and size.

Authentication follows what registries ask for in ``WWW-Authenticate``: the
anonymous (or credentialed) bearer-token flow Docker Hub and ghcr.io use, or
basic auth. Credentials come from the Docker config (``~/.docker/config.json``)
through the Docker SDK, never from fleetctl's own files, and are never logged.
Answers are cached in the state database: tag lists and tag manifests for a TTL,
content-addressed manifests and configs for good.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import docker.auth
import requests

from fleetctl.catalog.imageref import DOCKER_HUB, PlatformImage, parse_reference
from fleetctl.digest import Digest, parse_digest, sha256_of
from fleetctl.errors import FleetError
from fleetctl.state import StateDB

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
DOCKER_HUB_API = "registry-1.docker.io"
#: fetch(image reference "registry/repo@digest", blob digest, is the manifest) -> chunks
BlobFetcher = Callable[[str, Digest, bool], Iterator[bytes]]
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
#: the most fleetctl reads of a JSON answer (tag list page, manifest, config, token)
MAX_DOCUMENT = 4 * 2**20


class RegistryError(FleetError):
    """The registry could not be reached or refused an answer."""


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 else host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RegistryClient:
    """One registry endpoint. Thread-safe; share one per endpoint."""

    def __init__(self, registry: str, db: StateDB | None = None, *, ttl: float = 300.0,
                 timeout: float = 10.0) -> None:
        self.registry = registry
        host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        # Docker talks plain HTTP to registries on loopback; so do we.
        self.base = f"{'http' if _is_loopback(host) else 'https'}://{host}"
        self.db = db
        self.ttl = ttl
        self.timeout = timeout
        self.requests = 0
        self._session = requests.Session()
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        auth = docker.auth.resolve_authconfig(docker.auth.load_config(), registry) or {}
        self._credentials = ((auth["username"], auth["password"])
                             if auth.get("username") and auth.get("password") else None)
        self._basic = False     # credentials go out only after the registry asked for them

    def _get(self, path: str, repository: str, accept: str | None = None) -> requests.Response:
        url = f"{self.base}/v2/{path}"
        headers = {"Accept": accept} if accept else {}
        scope = f"repository:{repository}:pull"
        for attempt in range(2):
            if scope in self._tokens:
                headers["Authorization"] = f"Bearer {self._tokens[scope]}"
            try:
                with self._lock:
                    self.requests += 1
                response = self._session.get(url, headers=headers, timeout=self.timeout,
                                             stream=True,
                                             auth=self._credentials if self._basic and
                                             "Authorization" not in headers else None)
            except requests.RequestException as exc:
                raise RegistryError(f"registry {self.registry}: {type(exc).__name__}: "
                                    f"{_short(exc)}; check the address and the mirror "
                                    f"setting") from None
            if response.status_code == 401 and attempt == 0:
                self._authenticate(response.headers.get("WWW-Authenticate", ""), scope)
                continue
            return response
        return response

    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self._credentials:
                raise RegistryError(f"registry {self.registry} wants a login; run "
                                    f"'docker login {self.registry}' on the controller")
            self._refuse_plain_http(self.base)
            self._basic = True
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"registry {self.registry}: unsupported authentication "
                                f"{scheme or 'challenge'!r}")
        fields = dict(_CHALLENGE.findall(params))
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", scope)}
        realm = fields.get("realm", "")
        if self._credentials:
            self._refuse_plain_http(realm)
        try:
            answer = self._session.get(realm, params=query, timeout=self.timeout,
                                       auth=self._credentials, stream=True)
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.registry}: token request failed: "
                                f"{_short(exc)}") from None
        if answer.status_code != 200:
            raise RegistryError(f"registry {self.registry}: token refused (HTTP "
                                f"{answer.status_code}); check 'docker login'")
        body = self._json(answer, "token answer")
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise RegistryError(f"registry {self.registry}: the token answer holds no token")
        self._tokens[scope] = token

    def _refuse_plain_http(self, url: str) -> None:
        """Credentials never cross plain HTTP, but to a registry on loopback."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not _is_loopback(parts.netloc):
            raise RegistryError(f"registry {self.registry}: refusing to send credentials to "
                                f"{parts.scheme or 'an'}://{parts.netloc or repr(url)}: not HTTPS")

    def _json(self, response: requests.Response, what: str) -> object:
        """A JSON answer of at most :data:`MAX_DOCUMENT` bytes."""
        try:
            return json.loads(self._bytes(response, what))
        except ValueError:
            raise RegistryError(f"registry {self.registry}: {what} is not JSON") from None

    def _object(self, body: bytes, what: str) -> dict:
        """A JSON object from an answer's bytes; RegistryError when it is not one."""
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise RegistryError(f"registry {self.registry}: {what} is not a JSON object")
        return value

    def _bytes(self, response: requests.Response, what: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(1 << 16):
            body += chunk
            if len(body) > MAX_DOCUMENT:
                response.close()
                raise RegistryError(f"registry {self.registry}: {what} is larger than "
                                    f"{MAX_DOCUMENT:,} bytes; refusing it")
        return bytes(body)

    def _cached(self, key: str, max_age: float | None) -> str | None:
        if self.db is None:
            return None
        hit = self.db.cache_get(f"{self.registry} {key}", max_age)
        return hit[0] if hit else None

    def _remember(self, key: str, body: str) -> None:
        if self.db is not None:
            self.db.cache_put(f"{self.registry} {key}", body)

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository`` (following pagination); [] when it does not exist."""
        key = f"tags {repository}"
        cached = self._cached(key, self.ttl)
        if cached is not None:
            return json.loads(cached)
        tags: list[str] = []
        path = f"{repository}/tags/list?n=1000"
        while path:
            response = self._get(path, repository)
            if response.status_code == 404:
                break
            self._check(response, f"tags of {repository}")
            body = self._json(response, f"tags of {repository}")
            page = body.get("tags") if isinstance(body, dict) else None
            if not isinstance(page, list | None) or not all(isinstance(t, str)
                                                            for t in page or []):
                raise RegistryError(f"registry {self.registry}: tags of {repository}: "
                                    f"not a list of tag names")
            tags.extend(page or [])
            link = response.links.get("next", {}).get("url", "")
            path = link.split("/v2/", 1)[1] if "/v2/" in link else ""
        self._remember(key, json.dumps(tags))
        return tags

    def manifest(self, repository: str, reference: str) -> tuple[Digest, dict]:
        """The manifest (or manifest list) for a tag or digest, and its digest: the
        sha256 of the bytes received, which must equal the digest asked for and the
        registry's ``Docker-Content-Digest``."""
        by_digest = reference.startswith("sha256:")
        what = f"manifest {repository}:{reference}"
        if by_digest:
            reference = parse_digest(reference, f"registry {self.registry}: {what}")
        key = f"manifest {repository}@{reference}"
        cached = self._cached(key, None if by_digest else self.ttl)
        if cached is not None:
            entry = json.loads(cached)
            return Digest(entry["digest"]), entry["manifest"]
        response = self._get(f"{repository}/manifests/{reference}", repository, MANIFEST_TYPES)
        self._check(response, what)
        body = self._bytes(response, what)
        digest = sha256_of(body)
        claimed = response.headers.get("Docker-Content-Digest")
        if (by_digest and digest != reference) or (claimed and claimed != digest):
            raise RegistryError(f"registry {self.registry}: {what}: the bytes received have "
                                f"digest {digest}, not {reference if by_digest else claimed}"
                                f"; refusing them")
        manifest = self._object(body, what)
        self._remember(key, json.dumps({"digest": digest, "manifest": manifest}))
        if not by_digest:
            self._remember(f"manifest {repository}@{digest}",
                           json.dumps({"digest": digest, "manifest": manifest}))
        return digest, manifest

    def config(self, repository: str, digest: Digest) -> dict:
        """An image config blob (content-addressed: checked, then cached for good)."""
        key = f"blob {repository}@{digest}"
        cached = self._cached(key, None)
        if cached is not None:
            return json.loads(cached)
        what = f"config {repository}@{digest}"
        response = self._get(f"{repository}/blobs/{digest}", repository)
        self._check(response, what)
        body = self._bytes(response, what)
        if sha256_of(body) != digest:
            raise RegistryError(f"registry {self.registry}: {what} arrived as other bytes "
                                f"({sha256_of(body)}); refusing them")
        config = self._object(body, what)
        self._remember(key, body.decode())
        return config

    def blob(self, repository: str, digest: Digest, manifest: bool = False) -> Iterator[bytes]:
        """The bytes of a blob (or with ``manifest`` the exact bytes of a manifest), as
        they arrive; the caller checks them (``BlobStore.write`` in
        :mod:`fleetctl.delivery.blobstore`)."""
        kind = "manifests" if manifest else "blobs"
        response = self._get(f"{repository}/{kind}/{digest}", repository,
                             MANIFEST_TYPES if manifest else None)
        self._check(response, f"{kind[:-1]} {repository}@{digest}")
        try:
            yield from response.iter_content(1 << 20)
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.registry}: {kind[:-1]} {repository}@{digest}"
                                f": {_short(exc)}") from None
        finally:
            response.close()

    def images(self, repository: str, tag: str) -> list[PlatformImage]:
        """The platform images behind ``tag``: one for a plain manifest, one per entry
        of a manifest list (attestation entries skipped). Every digest in the answers
        is checked to be one."""
        digest, manifest = self.manifest(repository, tag)
        source = f"registry {self.registry}: manifest {repository}:{tag}"
        try:
            if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
                result = []
                for entry in manifest.get("manifests") or []:
                    platform = entry.get("platform") or {}
                    arch = str(platform.get("architecture", "unknown"))
                    if arch == "unknown":
                        continue
                    child_digest = parse_digest(entry.get("digest"), source)
                    _, child = self.manifest(repository, child_digest)
                    result.append(PlatformImage(tag, child_digest, arch,
                                                str(platform.get("os", "linux")),
                                                _size(child, source)))
                return result
            config = self.config(repository, parse_digest(
                (manifest.get("config") or {}).get("digest"), source))
            return [PlatformImage(tag, digest, str(config.get("architecture", "unknown")),
                                  str(config.get("os", "linux")), _size(manifest, source))]
        except (AttributeError, TypeError) as exc:
            raise RegistryError(f"{source}: not an image manifest ({exc})") from None

    def images_of(self, repository: str, tags: list[str],
                  workers: int = 8) -> list[PlatformImage]:
        """``images`` for many tags at once (tags that vanished meanwhile are skipped)."""
        def one(tag: str) -> list[PlatformImage]:
            try:
                return self.images(repository, tag)
            except RegistryError as exc:
                if "HTTP 404" in str(exc):
                    return []
                raise

        with ThreadPoolExecutor(max(1, min(workers, len(tags)))) as pool:
            return [image for images in pool.map(one, tags) for image in images]

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code in (401, 403):
            raise RegistryError(f"registry {self.registry}: {what}: credentials refused (HTTP "
                                f"{response.status_code}); check 'docker login "
                                f"{self.registry}' on the controller")
        if response.status_code != 200:
            raise RegistryError(f"registry {self.registry}: {what}: HTTP "
                                f"{response.status_code}")


def _size(manifest: dict, source: str) -> int:
    """Bytes a pull transfers: the config and every layer, compressed (every digest in
    it checked)."""
    parts = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
    total = 0
    for part in parts:
        parse_digest(part.get("digest"), source)
        size = part.get("size", 0)
        if not isinstance(size, int) or size < 0:
            raise RegistryError(f"{source}: size {size!r} is not a byte count")
        total += size
    return total


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 160 else text[:157] + "..."


def blob_fetcher(db: StateDB | None) -> BlobFetcher:
    """A :data:`BlobFetcher` asking each image's own registry (one client per registry,
    shared by threads)."""
    clients: dict[str, RegistryClient] = {}
    lock = threading.Lock()

    def fetch(reference: str, digest: Digest, manifest: bool) -> Iterator[bytes]:
        ref = parse_reference(reference)
        with lock:
            if ref.registry not in clients:
                clients[ref.registry] = RegistryClient(ref.registry, db)
            client = clients[ref.registry]
        return client.blob(ref.repository, digest, manifest)

    return fetch
