"""Autotag: which image fits a host. Pure functions of tags, versions and facts.

jetson-containers' own autotag parses tags loosely and accepts too much (JetPack 4
hosts taking r36 images, JetPack 7 hosts taking JetPack 6 images, new-style tags
never matching). Here every rule is explicit and tested on real tags.
"""

from __future__ import annotations

import re

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
