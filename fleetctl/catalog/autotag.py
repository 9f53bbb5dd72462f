"""Autotag: which image fits a host. Pure functions of tags, versions and facts.

jetson-containers' own autotag parses tags loosely and accepts too much (JetPack 4
hosts taking r36 images, JetPack 7 hosts taking JetPack 6 images, new-style tags
never matching). Here every rule is explicit and tested on real tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from fleetctl.catalog.packages import requirement_kind
from fleetctl.facts import jetson
from fleetctl.facts.hostfacts import HostFacts

_L4T = re.compile(r"(?:^|[-_])r(\d+)\.(\d+)(?:\.(\d+))?"  # r36.4 / r36.4.0
                  r"(?:\.([a-z0-9_.]+(?:-(?:aarch64|sbsa|x86_64))?))?"  # .tegra-aarch64
                  r"(?=$|[-_])")
_CUDA = re.compile(r"(?:^|-)cu(\d{3,4})(?=$|-)")
_UBUNTU = re.compile(r"(?:^|-)(\d{2}\.\d{2})(?=$|-)")
_VERSION = re.compile(r"^\d+(?:\.\d+)*$")
_ARCH_TOKENS = {
    "tegra-aarch64": "arm64", "aarch64": "arm64", "arm64-sbsa": "arm64", "sbsa": "arm64",
    "arm64": "arm64", "amd64.x86_64": "amd64", "amd64": "amd64", "x86_64": "amd64",
    "tegra-x86_64": "amd64",
}


def parse_tag(tag: str) -> dict[str, str | None]:
    """Read a jetson-containers tag: ``version``, ``l4t``, ``cuda``, ``ubuntu``, ``arch``.

    Handles the old (``r36.4.0``, ``0.6.8-r36.4.0``), the 2025 (``0.6.8-r36.4-cu126-22.04``)
    and the current shapes (``0.23.0-r36.4.tegra-aarch64-cu126-22.04``,
    ``r38.4.arm64-sbsa-cu130-24.04``) and x86 tags (``2.6-amd64-cu128-24.04``). Missing
    parts are None. ``arch`` is only the tag's hint, in Docker's names; the image's
    real platform comes from the registry.
    """
    after_colon = tag.rsplit(":", 1)[-1]
    if "/" not in after_colon:  # given a whole reference (repo:tag): read the tag
        tag = after_colon
    result: dict[str, str | None] = dict.fromkeys(("version", "l4t", "cuda", "ubuntu", "arch"))
    head = tag
    match = _L4T.search(tag)
    if match:
        major, minor, patch, hint = match.groups()
        result["l4t"] = f"{major}.{minor}" + (f".{patch}" if patch else "")
        if hint:
            result["arch"] = _ARCH_TOKENS.get(hint)
        head = tag[:match.start()]
    cuda = _CUDA.search(tag)
    if cuda:
        digits = cuda.group(1)
        result["cuda"] = f"{int(digits[:-1])}.{digits[-1]}"
    ubuntu = _UBUNTU.search(tag)
    if ubuntu:
        result["ubuntu"] = ubuntu.group(1)
    tokens = [t for t in re.split(r"[-_]", head) if t]
    if not match:
        tokens = tokens[:1]
    first = tokens[0] if tokens else ""
    if _VERSION.match(first) and first != result["ubuntu"]:
        result["version"] = first
    if result["arch"] is None:
        for token in re.split(r"-(?=[a-z])", tag):
            if token in _ARCH_TOKENS:
                result["arch"] = _ARCH_TOKENS[token]
    return result


def _major_minor(l4t: str) -> tuple[int, int]:
    parts = l4t.lstrip("rR").split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def l4t_compatible(host_l4t: str | None, image_l4t: str | None) -> bool:
    """Whether an image built for ``image_l4t`` runs on a host with ``host_l4t``.

    - JetPack 4: r32.7.x images on r32.7.x hosts (JetPack 4.6+); older r32 only exactly;
    - JetPack 5: r35 with r35, r34 with r34;
    - JetPack 6: r36 with r36 on the same side of the 36.4 split;
    - JetPack 7: r38/r39 images only, never newer than the host;
    - an unknown version on either side is never compatible.
    """
    if not host_l4t or not image_l4t:
        return False
    try:
        (host_major, host_minor), (image_major, image_minor) = (_major_minor(host_l4t),
                                                                _major_minor(image_l4t))
    except ValueError:
        return False
    if host_major in (38, 39):
        return image_major in (38, 39) and image_major <= host_major
    if host_major == 36:
        return image_major == 36 and (host_minor >= 4) == (image_minor >= 4)
    if host_major in (34, 35):
        return image_major == host_major
    if host_major == 32 and host_minor == 7:
        return image_major == 32 and image_minor == 7
    return (host_major, host_minor) == (image_major, image_minor)


# --- choosing an image for a host -------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """An image that might run on a host: a registry tag's platform image, or an
    image already in the host's engine."""

    tag: str | None
    digest: str | None
    arch: str | None
    source: str  # "registry" or "local"
    size: int = 0

    @property
    def parsed(self) -> dict[str, str | None]:
        return parse_tag(self.tag) if self.tag else dict.fromkeys(
            ("version", "l4t", "cuda", "ubuntu", "arch"))


@dataclass(frozen=True)
class Rejection:
    """A candidate that cannot run on the host, and why."""

    tag: str | None
    source: str
    reason: str


@dataclass(frozen=True)
class Choice:
    """The chosen image (None when nothing fits), why, and what was turned down."""

    candidate: Candidate | None
    version: str | None
    reason: str
    rejected: tuple[Rejection, ...] = ()


def l4t_family(l4t: str) -> str:
    """The images a host of this L4T takes, in words."""
    major, minor = _major_minor(l4t)
    if major in (38, 39):
        return "JetPack 7 takes r38/r39 images only"
    if major == 36:
        return "JetPack 6 takes r36.4+ images only" if minor >= 4 else \
            "JetPack 6 before 36.4 takes r36.0-r36.3 images only"
    if major in (34, 35):
        return f"JetPack 5 takes r{major} images only"
    if major == 32 and minor == 7:
        return "JetPack 4.6 takes r32.7 images only"
    return f"L4T {l4t} takes r{major}.{minor} images only"


def unmet_requirements(requires: tuple[str, ...] | list[str], facts: HostFacts) -> list[str]:
    """The ``requires`` entries the host fails, each with what the host has.

    L4T entries only apply to Jetsons; on other hosts they are not requirements of
    the host but of the images (which then must carry no L4T).
    """
    unmet = []
    arch = facts.docker_arch or jetson.docker_arch(facts.machine)
    for spec in requires:
        kind, body = requirement_kind(spec)
        if kind == "arch":
            wanted = body.lstrip("=!")
            ok = (_ARCH_TOKENS.get(wanted, wanted) == arch
                  and (wanted != "tegra-aarch64" or facts.is_jetson))
            if body.startswith("!="):
                ok = not ok
            if not ok:
                unmet.append(f"{spec} (host Docker is {arch})")
        elif kind == "ubuntu":
            wanted = body.lstrip("=!")
            ok = facts.ubuntu == wanted
            if body.startswith("!="):
                ok = not ok
            if not ok:
                unmet.append(f"Ubuntu {spec} (host has {facts.ubuntu or 'unknown'})")
        elif kind == "cuda":
            host = facts.cuda.replace(".", "") if facts.cuda else None
            if host is None or Version(host) not in SpecifierSet(body):
                unmet.append(f"CUDA {spec} (host has {facts.cuda or 'none'})")
        elif facts.is_jetson and (facts.l4t is None
                                  or Version(facts.l4t) not in SpecifierSet(body)):
            unmet.append(f"L4T {spec} (host has {facts.l4t or 'unknown'}"
                             + (f", JetPack {facts.jetpack})" if facts.jetpack else ")"))
    return unmet


def tag_reject_reason(facts: HostFacts, tag: str, l4t_bound: bool) -> str | None:
    """Why an image tagged ``tag`` cannot run on the host, judged by the tag's name
    alone (L4T family, CUDA major), or None when its name allows it."""
    parsed = parse_tag(tag)
    if facts.is_jetson:
        if parsed["l4t"] is None and l4t_bound:
            return "no L4T in the tag; this package's images must name their L4T"
        if parsed["l4t"] is not None and not l4t_compatible(facts.l4t, parsed["l4t"]):
            if facts.l4t is None:
                return f"built for L4T r{parsed['l4t']}; host L4T is unknown"
            return (f"built for L4T r{parsed['l4t']}; host L4T {facts.l4t}: "
                    f"{l4t_family(facts.l4t)}")
    elif parsed["l4t"] is not None:
        return f"built for L4T r{parsed['l4t']} (a Jetson image); host is {facts.platform}"
    cuda = parsed["cuda"]
    if cuda and facts.cuda and cuda.split(".")[0] != facts.cuda.split(".")[0]:
        return f"CUDA {cuda}, host has CUDA {facts.cuda} (major differs)"
    return None


def reject_reason(facts: HostFacts, candidate: Candidate, l4t_bound: bool) -> str | None:
    """Why ``candidate`` cannot run on the host, or None when it can.

    Tag rules come first, so a tag judged by its name alone (no manifest fetched)
    is rejected for the right reason.
    """
    if candidate.tag is None:
        return "untagged local image: nothing says which L4T it was built for"
    by_name = tag_reject_reason(facts, candidate.tag, l4t_bound)
    if by_name:
        return by_name
    if candidate.digest is None:
        return "no registry digest to pin it by (a local build?)"
    host_arch = facts.docker_arch or jetson.docker_arch(facts.machine)
    if candidate.arch != host_arch:
        return f"platform {candidate.arch}, host Docker is {host_arch}"
    return None


def _version_key(version: str | None) -> tuple[int, Version | str]:
    if version is None:
        return (0, "")
    try:
        return (2, Version(version))
    except InvalidVersion:
        return (1, version)


def _l4t_number(l4t: str) -> tuple[int, ...]:
    parts = [int(p) for p in l4t.split(".") if p.isdigit()]
    return tuple(parts + [0] * (3 - len(parts)))


def _rank(facts: HostFacts, candidate: Candidate) -> tuple:
    """Sort key, best first: closest L4T not newer than the host, CUDA then Ubuntu
    matching the host, then a local image, then the tag (for determinism)."""
    tag = candidate.parsed
    if tag["l4t"] and facts.l4t:
        host, image = _l4t_number(facts.l4t), _l4t_number(tag["l4t"])
        l4t = (image > host, tuple(abs(h - i) for h, i in zip(host, image, strict=True)))
    else:
        l4t = (False, (0, 0, 0))

    def match(have: str | None, want: str | None) -> int:
        return 1 if have is None or want is None else (0 if have == want else 2)

    return (l4t, match(tag["cuda"], facts.cuda), match(tag["ubuntu"], facts.ubuntu),
            candidate.source != "local", candidate.tag or "")


def merge_local(registry: list[Candidate], local: list[Candidate]) -> list[Candidate]:
    """One list of candidates: a local image whose digest is a registry image takes
    that tag and platform and counts as ``local`` (nothing to pull)."""
    by_digest = {c.digest: c for c in registry if c.digest}
    merged = {(c.tag, c.digest): c for c in registry}
    for image in local:
        known = by_digest.get(image.digest)
        if known is not None:
            merged[(known.tag, known.digest)] = Candidate(known.tag, known.digest, known.arch,
                                                          "local", 0)
        else:
            merged.setdefault((image.tag, image.digest), image)
    return list(merged.values())


def choose(facts: HostFacts, *, requires: tuple[str, ...] = (), l4t_bound: bool = True,
           requested: str | None = None, default: str | None = None,
           candidates: list[Candidate]) -> Choice:
    """Pick the image for one host. Same inputs, same answer.

    Version: ``requested`` exactly, else ``default``, else the highest version
    that fits. Among those: closest L4T, CUDA and Ubuntu as the host's, an image
    already on the host first.
    """
    unmet = unmet_requirements(requires, facts)
    if unmet:
        return Choice(None, None, "package requires " + "; ".join(unmet))
    fitting, rejected = [], []
    for candidate in candidates:
        why = reject_reason(facts, candidate, l4t_bound)
        if why:
            rejected.append(Rejection(candidate.tag, candidate.source, why))
        else:
            fitting.append(candidate)
    rejected.sort(key=lambda r: (r.tag or "", r.source))
    if not fitting:
        what = "no image at all" if not candidates else f"none of {len(candidates)} images fits"
        return Choice(None, None, f"no compatible image: {what}", tuple(rejected))
    versions = {c.parsed["version"] for c in fitting}
    if requested is not None:
        version, why = requested, f"{requested} as requested"
        if requested not in versions:
            return Choice(None, None, f"no compatible image of version {requested} (fitting "
                          f"versions: {_list_versions(versions)})", tuple(rejected))
    elif default is not None and default in versions:
        version, why = default, f"{default}, the package default"
    else:
        version = max(versions, key=_version_key)
        why = (f"{version or 'unversioned'}, the highest that fits"
               + (f" (no {default} image fits)" if default else ""))
    best = min((c for c in fitting if c.parsed["version"] == version),
               key=lambda c: _rank(facts, c))
    return Choice(best, version, f"{why}: {_describe(facts, best)}", tuple(rejected))


def _list_versions(versions: set[str | None]) -> str:
    return ", ".join(v or "unversioned" for v in sorted(versions, key=_version_key,
                                                        reverse=True)) or "none"


def _describe(facts: HostFacts, candidate: Candidate) -> str:
    tag = candidate.parsed
    parts = [candidate.tag or "?"]
    if tag["l4t"]:
        parts.append(f"L4T r{tag['l4t']} for host {facts.l4t}")
    for key, label in (("cuda", "CUDA"), ("ubuntu", "Ubuntu")):
        have = getattr(facts, key)
        if tag[key]:
            parts.append(f"{label} {tag[key]}" + (" as host" if tag[key] == have
                                                   else f" (host {have or 'unknown'})"))
    parts.append(candidate.arch or "?")
    parts.append("already on the host" if candidate.source == "local" else "from the registry")
    return ", ".join(parts)
