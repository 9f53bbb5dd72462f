"""Render a package's compose template for one host.

Templates are Jinja2 in a sandbox with StrictUndefined: a template can read the
values it is given and nothing else, and a missing one is an error naming it.
Every ``{{ ... }}`` renders as a YAML scalar by construction (a JSON string,
number, boolean or null), so a value from an inventory or a playbook can never
add keys to the file, whatever quotes or newlines it holds. The rendered file is
then parsed (duplicate keys refused) and checked: settings that give a container
power over its host (``privileged``, ``pid``, ``cap_add``, ``devices``...) and
bind mounts of host paths are refused unless the package declares them
(``privileges``, ``host_paths``; its data folder is always allowed). fleetctl
then stamps every service with the labels the probe reads back (package,
version, release), so a host always says what it runs.
"""

from __future__ import annotations

import functools
import json
import posixpath
from dataclasses import dataclass
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from fleetctl.catalog.packages import PRIVILEGES, Package
from fleetctl.errors import InputError
from fleetctl.yamlfile import load_yaml

LABEL_PACKAGE = "io.fleetctl.package"
LABEL_VERSION = "io.fleetctl.version"
LABEL_RELEASE = "io.fleetctl.release"
RELEASES_ROOT = "/opt/fleetctl"


def yaml_scalar(value: Any) -> str:
    """A value as one YAML flow scalar: JSON (a subset of YAML), all on one line, with
    ``$`` doubled so that compose takes it literally instead of interpolating it."""
    if isinstance(value, jinja2.Undefined):
        value = str(value)      # StrictUndefined raises here, naming the missing value
    if not isinstance(value, (bool, int, float, type(None))):
        value = str(value)
    if isinstance(value, str):
        value = value.replace("$", "$$")
    return json.dumps(value, ensure_ascii=True)


_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                            autoescape=False, finalize=yaml_scalar)
#: package strings (a health URL) are not YAML: their values render as they are
_TEXT_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


@functools.lru_cache(maxsize=256)
def _compiled(text: str, yaml_values: bool) -> jinja2.Template:
    """A template compiled once per text (compiling costs milliseconds; a rollout
    renders the same compose file and health URL for every host, every check)."""
    return (_ENV if yaml_values else _TEXT_ENV).from_string(text)


@dataclass(frozen=True)
class RenderContext:
    """What a template may use."""

    package: Package
    version: str
    image: str
    release: str
    host: str
    service_address: str
    facts: dict[str, Any]
    vars: dict[str, Any]

    @classmethod
    def for_host(cls, package: Package, host: str, host_vars: dict[str, Any], release: str,
                 version: str | None = None, image: str | None = None,
                 facts: dict[str, Any] | None = None,
                 package_vars: dict[str, Any] | None = None) -> RenderContext:
        """Template values for one release of ``package`` on ``host``: its
        ``fleetctl_service_address`` (default all addresses), its inventory vars and the
        playbook's vars for the package over them."""
        return cls(package=package, version=version or "", image=image or "",
                   release=release, host=host,
                   service_address=str(host_vars.get("fleetctl_service_address", "0.0.0.0")),
                   facts=facts or {}, vars={**host_vars, **(package_vars or {})})

    def as_dict(self) -> dict[str, Any]:
        cuda = self.facts.get("cuda") or ""
        return {
            "package": {"name": self.package.name, "env": self.package.env,
                        "ports": list(self.package.ports), "volumes": list(self.package.volumes),
                        "health": self.package.health.__dict__},
            "version": self.version, "image": self.image, "release": self.release,
            "host": self.host, "service_address": self.service_address,
            "check_address": check_address(self.service_address),
            "data_dir": f"{RELEASES_ROOT}/{self.package.name}/data",
            "cuda_major": cuda.split(".")[0] if cuda else "",
            "facts": self.facts, "vars": self.vars,
        }


def check_address(service_address: str) -> str:
    """Where a check on the host reaches a service bound to ``service_address``."""
    return "127.0.0.1" if service_address in ("0.0.0.0", "::", "") else service_address


def render_compose(ctx: RenderContext) -> str:
    """The compose file for ``ctx``; InputError naming the template and the problem."""
    path = ctx.package.compose_path
    try:
        template = _compiled(path.read_text(), yaml_values=True)
        text = template.render(ctx.as_dict())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"{path}:{exc.lineno}: template error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise InputError(f"{path}: {exc.message}; the template may use: "
                         f"{', '.join(sorted(ctx.as_dict()))}") from None
    except jinja2.TemplateError as exc:
        raise InputError(f"{path}: template error: {exc}") from None
    try:
        doc = load_yaml(path, text)
    except InputError as exc:
        raise InputError(f"{exc} (as rendered for {ctx.host}; values render as quoted "
                         f"YAML scalars: write {{{{ x }}}}, not \"{{{{ x }}}}\", and join "
                         f"text with ~)") from None
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict) or not services or \
            not all(isinstance(s, dict) for s in services.values()):
        raise InputError(f"{path}: the rendered file has no 'services' mapping")
    if not any(s.get("image") == ctx.image for s in services.values()):
        raise InputError(f"{path}: no service uses the planned image; write "
                         f"'image: {{{{ image }}}}'")
    for name, service in services.items():
        _check_service(ctx, name, service)
    for service in services.values():
        labels = service.setdefault("labels", {})
        if isinstance(labels, list):
            labels = service["labels"] = dict(item.split("=", 1) for item in labels)
        labels.update({LABEL_PACKAGE: ctx.package.name, LABEL_VERSION: ctx.version,
                       LABEL_RELEASE: ctx.release})
    header = f"# {ctx.package.name} {ctx.version} release {ctx.release} for {ctx.host}\n"
    return header + yaml.dump(_plain(doc), Dumper=yaml.CSafeDumper, sort_keys=False)


def _plain(value: Any) -> Any:
    """The loader's line-aware containers as plain dicts and lists, for dumping."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _check_service(ctx: RenderContext, name: str, service: dict[str, Any]) -> None:
    """Refuse host powers and host mounts the package does not declare."""
    package = ctx.package
    where = f"{package.compose_path}: service {name!r} (as rendered for {ctx.host})"
    for key in service:
        if key in PRIVILEGES and key not in package.privileges:
            raise InputError(f"{where}: {key!r} is not among the package's privileges; add "
                             f"it to 'privileges' in {package.path / 'package.yml'} if the "
                             f"package needs it")
    allowed = [f"{RELEASES_ROOT}/{package.name}/data", *package.host_paths]
    for source in _bind_sources(service.get("volumes") or []):
        path = posixpath.normpath(source)
        if source.startswith((".", "~")) or not any(
                path == a or path.startswith(a.rstrip("/") + "/") for a in allowed):
            raise InputError(f"{where}: mounts host path {source!r}, which the package does "
                             f"not declare; list it under 'host_paths' in "
                             f"{package.path / 'package.yml'}")


def _bind_sources(volumes: Any) -> list[str]:
    """Host paths of a service's bind mounts (short and long syntax); named volumes are
    not host paths."""
    if not isinstance(volumes, list):
        raise InputError(f"volumes: expected a list, got {type(volumes).__name__}")
    sources = []
    for volume in volumes:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0] if ":" in volume else ""
        elif isinstance(volume, dict):
            source = str(volume.get("source", "")) if volume.get("type", "volume") == "bind" \
                else ""
        else:
            raise InputError(f"volumes: {volume!r} is not a volume")
        if source.startswith(("/", ".", "~")):
            sources.append(source)
    return sources


def render_text(ctx: RenderContext, text: str) -> str:
    """A package string with template values in it (e.g. the health URL)."""
    try:
        return _compiled(text, yaml_values=False).render(ctx.as_dict())
    except jinja2.TemplateError as exc:
        raise InputError(f"{ctx.package.path / 'package.yml'}: {text!r}: {exc}") from None
