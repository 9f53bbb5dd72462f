"""Host facts: the probe script a host runs, and the pure parser of its output.

The controller sends :data:`PROBE_SCRIPT` to ``sh -s`` over one SSH channel; the
host prints sections introduced by ``@@fleetctl:<name>`` lines, and
:func:`parse_probe` turns them into a :class:`HostFacts`. Nothing here touches
the network, so parsing is tested on recorded output of real and lab Jetsons.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from typing import Any

from fleetctl.digest import Digest, DigestError, parse_digest
from fleetctl.facts import jetson

SCHEMA = 1
MARK = "@@fleetctl:"

#: POSIX sh, no Python needed on the host (``probe.sh`` beside this module).
PROBE_SCRIPT = (resources.files("fleetctl.facts") / "probe.sh").read_text()


class ProbeOutputError(ValueError):
    """The host's answer is not the probe's output (a broken shell, a login banner...)."""


@dataclass
class Container:
    """A container on the host, as ``docker ps`` shows it."""

    name: str
    image: str
    state: str
    health: str | None
    project: str | None = None
    package: str | None = None
    version: str | None = None
    release: str | None = None
    digest: str | None = None


@dataclass
class LocalImage:
    """An image in the host's engine, with its registry digest when it has one."""

    repository: str
    tag: str | None
    digest: str | None
    id: str
    size: str


@dataclass
class HostFacts:
    """Everything fleetctl knows of a host after one probe. JSON form: :meth:`to_json`."""

    hostname: str
    machine: str
    kernel: str
    os_id: str | None = None
    os_version: str | None = None
    l4t: str | None = None
    l4t_source: str | None = None
    jetpack: str | None = None
    cuda: str | None = None
    cuda_source: str | None = None
    ubuntu: str | None = None
    model: str | None = None
    compatible: list[str] = field(default_factory=list)
    part_number: str | None = None
    module: str | None = None
    module_short: str | None = None
    soc: str | None = None
    cuda_arch: str | None = None
    serial: str | None = None
    memory_total_mb: int | None = None
    memory_available_mb: int | None = None
    nvpmodel: str | None = None
    docker: bool = False
    docker_error: str | None = None
    docker_version: str | None = None
    docker_arch: str | None = None
    docker_root: str | None = None
    disk_free_mb: int | None = None
    runtimes: list[str] = field(default_factory=list)
    default_runtime: str | None = None
    compose: str = "none"
    compose_path: str | None = None
    containers: list[Container] = field(default_factory=list)
    images: list[LocalImage] = field(default_factory=list)

    @property
    def is_jetson(self) -> bool:
        """True when the host identifies as a Jetson (L4T or a Tegra device tree)."""
        return bool(self.l4t or (self.soc or "").startswith("tegra"))

    @property
    def platform(self) -> str:
        """What the host is: ``jetson``, ``sbsa`` (arm64 server) or ``x86_64``."""
        if self.is_jetson:
            return "jetson"
        return "sbsa" if self.machine == "aarch64" else self.machine

    @property
    def nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes

    def to_json(self) -> dict[str, Any]:
        """The stable, versioned JSON form."""
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostFacts:
        """Read the JSON form back; ValueError for another schema version."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"facts schema {data.get('schema')!r} is not {SCHEMA}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["containers"] = [Container(**c) for c in values.get("containers", [])]
        values["images"] = [LocalImage(**i) for i in values.get("images", [])]
        return cls(**values)


def split_sections(output: str) -> dict[str, str]:
    """Sections of the probe output by name; ProbeOutputError when it is not probe output."""
    sections: dict[str, str] = {}
    name = None
    lines: list[str] = []
    for line in output.split("\n"):
        if line.startswith(MARK):
            if name is not None:
                sections[name] = "\n".join(lines).strip("\n")
            name, lines = line[len(MARK):].strip(), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = "\n".join(lines).strip("\n")
    if sections.get("begin") != "1" or "end" not in sections:
        sample = output.strip().replace("\n", " ")[:60]
        raise ProbeOutputError(f"garbage output, not the probe's: {sample!r}")
    return sections


def parse_probe(output: str) -> HostFacts:
    """Parse the probe script's output into facts."""
    s = split_sections(output)
    uname = [*s.get("uname", "").splitlines(), "", ""]
    facts = HostFacts(hostname=s.get("hostname", "").strip(), machine=uname[0].strip(),
                      kernel=uname[1].strip())
    os_release = _key_values(s.get("os_release", ""))
    facts.os_id, facts.os_version = os_release.get("ID"), os_release.get("VERSION_ID")
    _parse_l4t(facts, s)
    _parse_device_tree(facts, s)
    _parse_memory(facts, s.get("meminfo", ""))
    facts.nvpmodel = parse_nvpmodel(s.get("nvpmodel", ""))
    if "docker_info" in s:
        _parse_docker(facts, s)
    found = dict(line.partition(" ")[::2] for line in s.get("compose", "").splitlines())
    for flavour in ("v2", "v1"):  # docker compose v2 wins where both are installed
        if flavour in found:
            facts.compose, facts.compose_path = flavour, found[flavour]
            break
    return facts


def _key_values(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


def _parse_l4t(facts: HostFacts, s: dict[str, str]) -> None:
    release = s.get("nv_tegra_release", "")
    if release.strip():
        with contextlib.suppress(ValueError):
            facts.l4t = jetson.parse_nv_tegra_release(release)
            facts.l4t_source = "nv_tegra_release"
    core = s.get("l4t_core", "").strip().strip("'\"")
    if not facts.l4t and re.match(r"^\d+\.\d+\.\d+", core):
        facts.l4t, facts.l4t_source = core.split("-", 1)[0], "nvidia-l4t-core"
    facts.jetpack = jetson.jetpack_for_l4t(facts.l4t)
    try:
        cuda_json = json.loads(s.get("cuda_json") or "{}")
    except json.JSONDecodeError:
        cuda_json = {}
    version = (cuda_json.get("cuda_nvcc") or cuda_json.get("cuda") or {}).get("version")
    if version:
        facts.cuda, facts.cuda_source = ".".join(version.split(".")[:2]), "version.json"
    elif facts.l4t:
        facts.cuda = jetson.cuda_for_l4t(facts.l4t)
        facts.cuda_source = "l4t" if facts.cuda else None
    if facts.os_id == "ubuntu":
        facts.ubuntu = facts.os_version
    elif facts.l4t:
        facts.ubuntu = jetson.ubuntu_for_l4t(facts.l4t)


def _parse_device_tree(facts: HostFacts, s: dict[str, str]) -> None:
    facts.model = jetson.strip_nul(s.get("dt_model", "")) or None
    facts.serial = jetson.strip_nul(s.get("dt_serial-number", "")) or None
    facts.compatible = jetson.split_compatible(s.get("dt_compatible", ""))
    if facts.compatible:
        module = jetson.module_from_compatible("\0".join(facts.compatible))
        facts.part_number, facts.module = module["part_number"], module["module"]
        facts.module_short, facts.soc = module["module_short"], module["soc"]
        facts.cuda_arch = module["cuda_arch"]


def _parse_memory(facts: HostFacts, text: str) -> None:
    values = {k.rstrip(":"): int(v) for k, v, *_ in (line.split() for line in text.splitlines())
              if v.isdigit()}
    if "MemTotal" in values:
        facts.memory_total_mb = values["MemTotal"] // 1024
    if "MemAvailable" in values:
        facts.memory_available_mb = values["MemAvailable"] // 1024


def parse_nvpmodel(text: str) -> str | None:
    """The power mode name from ``nvpmodel -q`` (the whole name, dashes and spaces kept)."""
    match = re.search(r"^NV Power Mode:\s*(.+?)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def _parse_docker(facts: HostFacts, s: dict[str, str]) -> None:
    df = s.get("docker_df", "").splitlines()
    if len(df) >= 2 and len(df[-1].split()) >= 4 and df[-1].split()[3].isdigit():
        facts.disk_free_mb = int(df[-1].split()[3]) // 1024
    raw = s["docker_info"].strip()
    try:
        info = json.loads(raw.splitlines()[-1] if raw else "{}")
    except json.JSONDecodeError:
        info = {}
    if not info.get("ServerVersion"):
        errors = info.get("ServerErrors") or [raw.splitlines()[-1] if raw else "no answer"]
        facts.docker_error = str(errors[0])[:200]
        return
    facts.docker = True
    facts.docker_version = info["ServerVersion"]
    facts.docker_arch = jetson.docker_arch(info.get("Architecture"))
    facts.docker_root = info.get("DockerRootDir")
    facts.runtimes = sorted(info.get("Runtimes") or {})
    facts.default_runtime = info.get("DefaultRuntime")
    facts.images = [LocalImage(repo, None if tag == "<none>" else tag,
                               digest_from_tag(tag) if digest == "<none>" else
                               _device_digest(digest, f"image {repo}:{tag}"),
                               image_id, size)
                    for repo, tag, digest, image_id, size in
                    (line.split("\t") for line in s.get("docker_images", "").splitlines()
                     if line.count("\t") == 4)]
    for line in s.get("docker_ps", "").splitlines():
        cols = line.split("\t")
        if len(cols) != 8:
            continue
        name, image, state, status, project, package, version, release = cols
        health = re.search(r"\((healthy|unhealthy|health: starting)\)", status)
        facts.containers.append(Container(
            name=name, image=image, state=state,
            health=health.group(1).replace("health: ", "") if health else None,
            project=project or None, package=package or None, version=version or None,
            release=release or None, digest=_image_digest(image, facts.images)))


def digest_from_tag(tag: str | None) -> Digest | None:
    """The manifest digest an image delivered over SSH carries in its tag
    (``sha256-<hex>``, see :func:`fleetctl.delivery.images.local_tag`); None for other tags."""
    if tag and tag.startswith("sha256-"):
        try:
            return parse_digest("sha256:" + tag[7:], "tag")
        except DigestError:
            return None
    return None


def image_digest(reference: str) -> Digest | None:
    """The digest a pinned reference names (``name@sha256:...`` or a delivered image's
    ``name:sha256-<hex>``); None when it names none."""
    _, at, digest = reference.rpartition("@")
    if at:
        return _device_digest(digest, f"image {reference}")
    return digest_from_tag(reference.rpartition(":")[2])


def _device_digest(value: str, what: str) -> Digest:
    try:
        return parse_digest(value, what)
    except DigestError as exc:
        raise ProbeOutputError(str(exc)) from None


def _image_digest(reference: str, images: list[LocalImage]) -> str | None:
    if "@" in reference:
        return image_digest(reference)
    repo, _, tag = reference.rpartition(":") if ":" in reference.split("/")[-1] else (
        reference, "", "latest")
    return next((i.digest for i in images if i.repository == repo and i.tag == tag), None)
