"""Image references as Docker reads them, a plan's record of one platform of a tag, and
one platform's image: the values the registry client, the planner and bundles share.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker.auth
import docker.utils

from fleetctl.digest import Digest

DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    """``[registry/]repository[:tag][@digest]``, with Docker's defaults applied."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` as ``docker pull`` wants it (Docker Hub left implicit)."""
        return self.repository if self.registry == DOCKER_HUB else \
            f"{self.registry}/{self.repository}"

    def pinned(self, digest: str) -> str:
        """``name@digest``: the reference a deploy pulls and runs."""
        return f"{self.name}@{digest}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + \
            (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class TagKey:
    """One platform of one tag, as a plan records what it saw:
    ``registry/repository:tag#arch``."""

    registry: str
    repository: str
    tag: str
    arch: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}#{self.arch}"

    @classmethod
    def parse(cls, key: str) -> TagKey:
        where, _, arch = key.rpartition("#")
        registry, _, rest = where.partition("/")
        repository, _, tag = rest.rpartition(":")
        return cls(registry, repository, tag, arch)


def parse_reference(text: str) -> ImageRef:
    """Read an image reference the way Docker does (``ubuntu`` is ``docker.io/library/ubuntu``)."""
    name, after = docker.utils.parse_repository_tag(text)
    registry, repository = docker.auth.resolve_repository_name(name)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if after and after.startswith("sha256:"):
        return ImageRef(registry, repository, None, after)
    return ImageRef(registry, repository, after)


def with_registry(ref: ImageRef, registry: str | None) -> ImageRef:
    """The same repository served by ``registry`` (a site's mirror), when one is set."""
    if not registry:
        return ref
    return ImageRef(registry, ref.repository, ref.tag, ref.digest)


@dataclass(frozen=True)
class PlatformImage:
    """One platform's image behind a tag: what a host would pull and run."""

    tag: str
    digest: Digest
    arch: str
    os: str
    size: int
