"""The package catalog: ``packages/<name>/package.yml`` files, validated, and their
dependency order.

A package names an image repository (``dustynv/ollama``), the versions fleetctl
knows with one default, what a host must have (``requires``), what must run first
(``depends``), and how to run and check it (a compose template, ``health``).
Every error names the file and line and says what to write instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from fleetctl.analysis.spec import Analysis, parse_analysis
from fleetctl.durations import parse_duration
from fleetctl.errors import InputError
from fleetctl.secrets import register
from fleetctl.sizes import parse_size
from fleetctl.yamlfile import Located, LocatedList, load_yaml

KEYS = {"name", "description", "group", "image", "versions", "aliases", "requires",
        "depends", "env", "secrets", "ports", "volumes", "health", "resources", "compose",
        "privileges", "host_paths", "analysis"}
#: service settings that give a container power over its host: refused in a rendered
#: compose file unless the package lists them under ``privileges``
PRIVILEGES = ("privileged", "pid", "ipc", "cap_add", "devices", "security_opt",
              "userns_mode", "cgroup_parent", "volumes_from")
HEALTH_KEYS = {"http", "command", "interval", "timeout", "retries", "start_period"}
RESOURCE_KEYS = {"min_memory", "min_free_disk"}
ARCHES = {"arm64", "aarch64", "amd64", "x86_64", "tegra-aarch64", "arm64-sbsa", "sbsa"}


@dataclass(frozen=True)
class Health:
    """How fleetctl decides a release is healthy: an HTTP URL or a command in the
    container, passing ``retries`` times in a row, within ``start_period + timeout``."""

    http: str | None = None
    command: str | None = None
    interval: float = 2.0
    timeout: float = 60.0
    retries: int = 3
    start_period: float = 0.0


@dataclass(frozen=True)
class Package:
    """One catalog entry, as validated from its ``package.yml``."""

    name: str
    path: Path
    image: str
    versions: tuple[str, ...]
    default: str
    description: str = ""
    group: str = ""
    aliases: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()       # env names whose values never reach logs
    ports: tuple[int, ...] = ()
    volumes: tuple[str, ...] = ()
    health: Health = Health()
    min_memory_mb: int = 0
    min_free_disk_mb: int = 0
    compose: str = "compose.yml.j2"
    privileges: tuple[str, ...] = ()    # of PRIVILEGES, allowed in its compose file
    host_paths: tuple[str, ...] = ()    # host folders or files it may bind-mount
    analysis: Analysis | None = None    # how a canary is judged after its health gate

    def __post_init__(self) -> None:
        register(self.env[name] for name in self.secrets if name in self.env)

    @property
    def compose_path(self) -> Path:
        return self.path / self.compose

    @property
    def tests(self) -> list[Path]:
        """testinfra files shipped with the package (``test_*.py``)."""
        return sorted(self.path.glob("test_*.py"))

    def to_json(self) -> dict[str, Any]:
        """The package as ``packages show --json`` prints it."""
        return {
            "name": self.name, "description": self.description, "group": self.group,
            "image": self.image, "versions": list(self.versions), "default": self.default,
            "aliases": list(self.aliases), "requires": list(self.requires),
            "depends": list(self.depends), "env": self.env, "secrets": list(self.secrets),
            "privileges": list(self.privileges), "host_paths": list(self.host_paths),
            "ports": list(self.ports),
            "volumes": list(self.volumes), "health": self.health.__dict__,
            "resources": {"min_memory_mb": self.min_memory_mb,
                          "min_free_disk_mb": self.min_free_disk_mb},
            "compose": str(self.compose_path), "tests": [str(t) for t in self.tests],
            "analysis": self.analysis.to_json() if self.analysis else None,
        }


@dataclass(frozen=True)
class Request:
    """``ollama`` or ``ollama:0.6.8``: a package and maybe a version."""

    name: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


def parse_request(text: str) -> Request:
    """Read ``NAME[:VERSION]``."""
    name, _, version = text.strip().partition(":")
    if not name:
        raise InputError(f"package {text!r}: expected NAME or NAME:VERSION, e.g. ollama:0.6.8")
    return Request(name, version or None)


def default_catalog_dir() -> Path:
    """``$FLEETCTL_PACKAGES``, else ``./packages``, else the catalog shipped beside fleetctl."""
    if os.environ.get("FLEETCTL_PACKAGES"):
        return Path(os.environ["FLEETCTL_PACKAGES"])
    local = Path("packages")
    if (local / "ollama" / "package.yml").exists() or not _shipped().exists():
        return local
    return _shipped()


def _shipped() -> Path:
    return Path(__file__).resolve().parents[2] / "packages"   # beside the fleetctl package


class Catalog:
    """All packages of a catalog directory, looked up by name or alias."""

    def __init__(self, packages: list[Package], root: Path) -> None:
        self.root = root
        self.packages = {p.name: p for p in packages}
        self._names = dict(self.packages)
        for package in packages:
            for alias in package.aliases:
                if alias in self._names:
                    raise InputError(f"{package.path / 'package.yml'}: alias {alias!r} is "
                                     f"already the name or alias of "
                                     f"{self._names[alias].name!r}; remove one")
                self._names[alias] = package

    def get(self, name: str) -> Package:
        """The package called (or aliased) ``name``; InputError listing the catalog."""
        try:
            return self._names[name]
        except KeyError:
            known = ", ".join(sorted(self.packages)) or "none"
            raise InputError(f"no package {name!r} in {self.root} (packages: {known}); "
                             f"see 'fleetctl packages list'") from None

    def resolve(self, requests: list[Request]) -> list[tuple[Package, str | None]]:
        """The requested packages and all they depend on, dependencies first.

        A tagged request (``ollama:0.6.8``) satisfies an untagged dependency on
        ``ollama``; two different versions of one package are an error; a cycle is
        an error showing the cycle.
        """
        pinned: dict[str, str | None] = {}
        for request in requests:
            package = self.get(request.name)
            other = pinned.get(package.name)
            if other and request.version and other != request.version:
                raise InputError(f"conflicting versions of {package.name}: {other} and "
                                 f"{request.version}; ask for one")
            pinned[package.name] = request.version or other
        order: list[str] = []
        visiting: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                cycle = [*visiting[visiting.index(name):], name]
                raise InputError(f"dependency cycle: {' -> '.join(cycle)}; remove one of "
                                 f"these 'depends' entries")
            visiting.append(name)
            package = self.packages[name]
            for dep in package.depends:
                request = parse_request(dep)
                dep_package = self.get(request.name)
                want = pinned.get(dep_package.name)
                if request.version and want and want != request.version:
                    raise InputError(f"conflicting versions of {dep_package.name}: {want} and "
                                     f"{request.version} (needed by {name})")
                pinned[dep_package.name] = want or request.version
                visit(dep_package.name)
            visiting.pop()
            order.append(name)

        for request in requests:
            visit(self.get(request.name).name)
        return [(self.packages[name], pinned.get(name)) for name in order]


def load_catalog(root: Path) -> Catalog:
    """Every ``<root>/*/package.yml``, validated."""
    if not root.is_dir():
        raise InputError(f"{root}: no package catalog here; pass --packages DIR or set "
                         f"FLEETCTL_PACKAGES")
    packages = [load_package(p) for p in sorted(root.glob("*/package.yml"))]
    return Catalog(packages, root)


def load_package(path: Path, text: str | None = None) -> Package:
    """One ``package.yml``; InputError naming file, line and the fix for anything wrong."""
    doc = load_yaml(path, text)
    if not isinstance(doc, Located):
        raise InputError(f"{path}:1: a package is a mapping with at least name, image and "
                         f"versions")

    def fail(key: Any, message: str, where: Any = doc) -> InputError:
        line = where.line_of(key) if isinstance(where, (Located, LocatedList)) else doc.line
        return InputError(f"{path}:{line}: {message}")

    unknown = sorted(set(doc) - KEYS, key=str)
    if unknown:
        raise fail(unknown[0], f"unknown key {unknown[0]!r}; keys: {', '.join(sorted(KEYS))}")
    for key in ("name", "image", "versions"):
        if key not in doc:
            raise InputError(f"{path}:{doc.line}: missing key {key!r}")

    def text_of(key: str, default: str = "") -> str:
        value = doc.get(key, default)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise fail(key, f"{key} must be a string")
        if "\0" in str(value):
            raise fail(key, f"{key} holds a NUL character")
        return str(value)

    def strings(key: str) -> tuple[str, ...]:
        value = doc.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float))
                                                  for v in value):
            raise fail(key, f"{key} must be a string or a list of strings")
        return tuple(str(v) for v in value)

    name = text_of("name")
    if name != path.parent.name:
        raise fail("name", f"name {name!r} differs from its folder {path.parent.name!r}; "
                           f"rename one")
    versions, default = _versions(doc, path)
    requires = strings("requires")
    for index, spec in enumerate(requires):
        problem = requirement_problem(spec)
        if problem:
            where = doc["requires"] if isinstance(doc["requires"], LocatedList) else doc
            raise fail(index if where is not doc else "requires", f"requires {spec!r}: {problem}",
                       where)
    env = doc.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
        raise fail("env", "env must be a mapping of NAME: value")
    ports = doc.get("ports", [])
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536
                                              for p in ports):
        raise fail("ports", "ports must be a list of port numbers, e.g. [11434]")
    compose = text_of("compose", "compose.yml.j2")
    folder = path.parent.resolve()
    if not (folder / compose).resolve().is_relative_to(folder):
        raise fail("compose", f"compose {compose!r} is outside the package folder; keep "
                              f"the template in {path.parent}")
    if not (path.parent / compose).is_file():
        raise fail("compose", f"compose template {path.parent / compose} does not exist")
    privileges = strings("privileges")
    unknown_privilege = sorted(set(privileges) - set(PRIVILEGES))
    if unknown_privilege:
        raise fail("privileges", f"privileges {unknown_privilege[0]!r}: one of "
                                 f"{', '.join(PRIVILEGES)}")
    host_paths = strings("host_paths")
    if any(not p.startswith("/") or ".." in p.split("/") for p in host_paths):
        raise fail("host_paths", "host_paths are absolute paths without '..'")
    min_memory, min_disk = _resources(doc, path)
    return Package(
        name=name, path=path.parent, image=text_of("image"), versions=versions,
        default=default, description=text_of("description"), group=text_of("group"),
        aliases=strings("aliases"), requires=requires, depends=strings("depends"),
        env={k: str(v) for k, v in env.items()}, secrets=strings("secrets"),
        ports=tuple(ports), privileges=privileges, host_paths=host_paths,
        volumes=strings("volumes"), health=_health(doc, path), min_memory_mb=min_memory,
        min_free_disk_mb=min_disk, compose=compose,
        analysis=parse_analysis(doc["analysis"], path) if "analysis" in doc else None)


def _versions(doc: Located, path: Path) -> tuple[tuple[str, ...], str]:
    raw = doc["versions"]
    if not isinstance(raw, LocatedList) or not raw:
        raise InputError(f"{path}:{doc.line_of('versions')}: versions is a list, e.g. "
                         f"[{{version: '0.6.8', default: true}}, '0.6.3']")
    versions, defaults = [], []
    for index, item in enumerate(raw):
        if isinstance(item, dict):
            extra = set(item) - {"version", "default"}
            if "version" not in item or extra:
                raise InputError(f"{path}:{raw.line_of(index)}: a version entry is "
                                 f"'X.Y.Z' or {{version: X.Y.Z, default: true}}")
            version = str(item["version"])
            if item.get("default"):
                defaults.append(version)
        else:
            version = str(item)
        versions.append(version)
    if len(defaults) != 1:
        raise InputError(f"{path}:{doc.line_of('versions')}: exactly one version must be "
                         f"'default: true' (found {len(defaults)})")
    return tuple(versions), defaults[0]


def _section(doc: Located, path: Path, key: str, keys: set[str]) -> Located | None:
    """A nested mapping (``health``, ``resources``) with only known keys, or None."""
    raw = doc.get(key)
    if raw is None:
        return None
    if not isinstance(raw, Located):
        raise InputError(f"{path}:{doc.line_of(key)}: {key} is a mapping with "
                         f"{' or '.join(sorted(keys))}")
    unknown = sorted(set(raw) - keys, key=str)
    if unknown:
        raise InputError(f"{path}:{raw.line_of(unknown[0])}: unknown {key} key "
                         f"{unknown[0]!r}; keys: {', '.join(sorted(keys))}")
    return raw


def _health(doc: Located, path: Path) -> Health:
    raw = _section(doc, path, "health", HEALTH_KEYS)
    if raw is None:
        return Health()
    if ("http" in raw) == ("command" in raw):
        raise InputError(f"{path}:{raw.line}: health needs exactly one of http or command")
    return health_over(Health(), raw, path)


def health_over(base: Health, raw: Located, path: Path, where: str = "health") -> Health:
    """``base`` with the keys of the mapping ``raw`` applied (an ``http`` check
    replaces a ``command`` one and the other way round); InputError at file:line."""
    unknown = sorted(set(raw) - HEALTH_KEYS, key=str)
    if unknown:
        raise InputError(f"{path}:{raw.line_of(unknown[0])}: unknown {where} key "
                         f"{unknown[0]!r}; keys: {', '.join(sorted(HEALTH_KEYS))}")
    if "http" in raw and "command" in raw:
        raise InputError(f"{path}:{raw.line}: {where} takes http or command, not both")
    values: dict[str, Any] = {}
    for key in ("interval", "timeout", "start_period"):
        if key in raw:
            try:
                values[key] = parse_duration(raw[key])
            except ValueError:
                raise InputError(f"{path}:{raw.line_of(key)}: {where}.{key} {raw[key]!r} is "
                                 f"not a duration such as 30s or 2m") from None
    if "retries" in raw:
        if not isinstance(raw["retries"], int) or raw["retries"] < 1:
            raise InputError(f"{path}:{raw.line_of('retries')}: {where}.retries must be a "
                             f"positive whole number")
        values["retries"] = raw["retries"]
    if "http" in raw:
        values.update(http=str(raw["http"]), command=None)
        if not values["http"].startswith("http://"):
            raise InputError(f"{path}:{raw.line_of('http')}: {where}.http must be an "
                             f"http:// URL")
    if "command" in raw:
        values.update(command=str(raw["command"]), http=None)
    return replace(base, **values)


def _resources(doc: Located, path: Path) -> tuple[int, int]:
    raw = _section(doc, path, "resources", RESOURCE_KEYS)
    if raw is None:
        return 0, 0
    sizes = []
    for key in ("min_memory", "min_free_disk"):
        try:
            sizes.append(parse_size(str(raw.get(key, "0m"))) // 2**20)
        except ValueError:
            raise InputError(f"{path}:{raw.line_of(key)}: resources.{key} {raw[key]!r} is not "
                             f"a size such as 512m or 4g") from None
    return sizes[0], sizes[1]


def requirement_problem(spec: str) -> str | None:
    """Why a ``requires`` entry cannot be read, or None when it is well formed."""
    kind, body = requirement_kind(spec)
    if kind in ("arch", "ubuntu"):
        return None
    try:
        SpecifierSet(body)
    except InvalidSpecifier:
        return ("write an L4T ('>=r36', '==35.*'), CUDA ('>=cu126'), Ubuntu ('22.04') or "
                f"architecture ({', '.join(sorted(ARCHES))}) requirement")
    return None


def requirement_kind(spec: str) -> tuple[str, str]:
    """Classify a ``requires`` entry as jetson-containers does: ``arch``, ``ubuntu``,
    ``cuda`` or ``l4t``, with the specifier text to compare."""
    text = spec.strip().lower()
    bare = text.lstrip("=!")
    if bare in ARCHES:
        return "arch", text
    if len(bare) == 5 and bare[2] == "." and bare.replace(".", "").isdigit():
        return "ubuntu", text
    if "cu" in text:
        return "cuda", text.replace("cu", "")
    return "l4t", text.replace("r", "")
