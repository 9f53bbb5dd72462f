"""Render a package's compose template for one host.

Templates are Jinja2 in a sandbox with StrictUndefined: a template can read the
values it is given and nothing else, and a missing one is an error naming it.
fleetctl then stamps every service with the labels the probe reads back
(package, version, release), so a host always says what it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from fleetctl.catalog import Package
from fleetctl.errors import InputError

LABEL_PACKAGE = "io.fleetctl.package"
LABEL_VERSION = "io.fleetctl.version"
LABEL_RELEASE = "io.fleetctl.release"
RELEASES_ROOT = "/opt/fleetctl"

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                            autoescape=False)


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
        template = _ENV.from_string(path.read_text())
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
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: renders to invalid YAML for {ctx.host}: {exc}") from None
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict) or not services:
        raise InputError(f"{path}: the rendered file has no 'services'")
    if not any(isinstance(s, dict) and s.get("image") == ctx.image for s in services.values()):
        raise InputError(f"{path}: no service uses the planned image; write "
                         f"'image: {{{{ image }}}}'")
    for service in services.values():
        labels = service.setdefault("labels", {})
        if isinstance(labels, list):
            labels = service["labels"] = dict(item.split("=", 1) for item in labels)
        labels.update({LABEL_PACKAGE: ctx.package.name, LABEL_VERSION: ctx.version,
                       LABEL_RELEASE: ctx.release})
    header = f"# {ctx.package.name} {ctx.version} release {ctx.release} for {ctx.host}\n"
    return header + yaml.safe_dump(doc, sort_keys=False)


def render_text(ctx: RenderContext, text: str) -> str:
    """A package string with template values in it (e.g. the health URL)."""
    try:
        return _ENV.from_string(text).render(ctx.as_dict())
    except jinja2.TemplateError as exc:
        raise InputError(f"{ctx.package.path / 'package.yml'}: {text!r}: {exc}") from None
