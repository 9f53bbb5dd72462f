"""Playbooks: a rollout declared in YAML. Loading, validation and maintenance windows.

A playbook names its targets (an inventory group, a pattern, fact selectors),
the packages with versions, container env and template vars, the strategy
(steps, canary, pauses, failure policy), health gate overrides per package and
an optional maintenance window outside of which activation does not start. With
``os: {l4t: 36.4.3}`` it updates the hosts' L4T first, each host's apps (and its
``packages``, then optional) redeployed for the new release in the same host step.
Every error names the file and line and says what to write instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fleetctl.analysis.spec import Analysis, parse_analysis
from fleetctl.catalog.packages import Catalog, Health, health_over
from fleetctl.durations import parse_duration
from fleetctl.errors import FleetError, InputError
from fleetctl.rollout.strategy import parse_policy, parse_steps
from fleetctl.yamlfile import Located, LocatedList, load_yaml

KEYS = {"name", "description", "targets", "packages", "strategy", "health", "window",
        "analysis", "os"}
OS_KEYS = {"l4t", "reboot_timeout", "payload"}
TARGET_KEYS = {"group", "pattern", "where"}
PACKAGE_KEYS = {"name", "version", "env", "secrets", "vars"}
STRATEGY_KEYS = {"steps", "canary", "pause", "max_failures", "failure_scope", "unreachable",
                 "rollback_all", "gate_timeout", "keep"}
WINDOW_KEYS = {"days", "start", "duration", "timezone"}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    """Activation may start on ``days`` from ``start`` for ``duration`` seconds, local time
    in ``timezone``. A window may run past midnight; it belongs to the day it opens."""

    days: tuple[int, ...]          # 0 = Monday
    start: dt.time
    duration: float
    timezone: str = "UTC"

    def _openings(self, now: dt.datetime) -> list[dt.datetime]:
        zone = ZoneInfo(self.timezone)
        today = now.astimezone(zone).date()
        return [dt.datetime.combine(today + dt.timedelta(days=d), self.start, zone)
                for d in range(-1, 8)
                if (today + dt.timedelta(days=d)).weekday() in self.days]

    def is_open(self, now: dt.datetime) -> bool:
        """Whether ``now`` (timezone-aware) falls inside the window."""
        return any(o <= now < o + dt.timedelta(seconds=self.duration)
                   for o in self._openings(now))

    def next_opening(self, now: dt.datetime) -> dt.datetime:
        """When the window next opens after ``now``."""
        return min(o for o in self._openings(now) if o > now)

    def describe(self) -> str:
        """``mon,tue 02:00 for 4h Europe/Berlin``."""
        hours = self.duration / 3600
        return (f"{','.join(DAYS[d] for d in self.days)} {self.start:%H:%M} for "
                f"{hours:g}h {self.timezone}")

    def to_json(self) -> dict[str, Any]:
        return {"days": list(self.days), "start": f"{self.start:%H:%M}",
                "duration": self.duration, "timezone": self.timezone}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Window:
        return cls(tuple(data["days"]), dt.time.fromisoformat(data["start"]),
                   float(data["duration"]), data["timezone"])


def window_closed(window: dict[str, Any] | None, now: dt.datetime | None = None) -> str | None:
    """Why activation may not start now (a window stored as JSON), or None."""
    if not window:
        return None
    parsed = Window.from_json(window)
    now = now or dt.datetime.now(dt.timezone.utc)
    if parsed.is_open(now):
        return None
    opens = parsed.next_opening(now)
    return (f"outside the maintenance window ({parsed.describe()}); it opens at "
            f"{opens:%Y-%m-%d %H:%M %Z}")


@dataclass(frozen=True)
class PackageSpec:
    """One package of a playbook: version (or the default), container env, template vars."""

    name: str
    version: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()       # env names whose values never reach logs

    @property
    def request(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


@dataclass(frozen=True)
class Playbook:
    """A validated playbook."""

    path: Path
    sha256: str
    name: str
    packages: tuple[PackageSpec, ...]
    description: str = ""
    group: str | None = None
    pattern: str | None = None
    where: tuple[str, ...] = ()
    steps: tuple[str, ...] = ("1", "100%")
    canary: tuple[str, ...] = ()
    pause: str | None = None
    max_failures: str = "1"
    failure_scope: str = "step"
    unreachable: str = "deferred"
    rollback_all: bool = False
    gate_timeout: float | None = None
    keep: int = 3
    health: dict[str, Located] = field(default_factory=dict)
    window: Window | None = None
    #: per package, an analysis replacing the package's, or None: health gate only
    analysis: dict[str, Analysis | None] = field(default_factory=dict)
    os_target: str | None = None            # ``os.l4t``: the L4T release to update to
    reboot_timeout: float | None = None     # ``os.reboot_timeout``
    os_payload: Path | None = None          # ``os.payload``, relative to the playbook

    @property
    def requests(self) -> list[str]:
        return [p.request for p in self.packages]

    def apply(self, catalog: Catalog) -> tuple[Catalog, dict[str, dict[str, Any]]]:
        """The catalog with this playbook's env, health and analysis overrides, and the
        template vars per package (InputError at the playbook's line for an unknown
        package)."""
        packages = dict(catalog.packages)
        for name, analysis in self.analysis.items():
            if name not in packages:
                raise InputError(f"{self.path}: analysis: no package {name!r} in the catalog")
            packages[name] = replace(packages[name], analysis=analysis)
        for name, raw in self.health.items():
            if name not in packages:
                raise InputError(f"{self.path}:{raw.line}: health: no package {name!r} in "
                                 f"the catalog")
            packages[name] = replace(packages[name], health=health_over(
                packages[name].health, raw, self.path, f"health.{name}"))
        for spec in self.packages:
            if spec.env or spec.secrets:
                base = packages[catalog.get(spec.name).name]
                packages[base.name] = replace(base, env={**base.env, **spec.env},
                                              secrets=(*base.secrets, *spec.secrets))
        return (Catalog(list(packages.values()), catalog.root),
                {catalog.get(p.name).name: p.vars for p in self.packages if p.vars})


def load_playbook(path: Path) -> Playbook:
    """Read and validate a playbook; InputError naming file and line for anything wrong."""
    doc = load_yaml(path)
    if not isinstance(doc, Located):
        raise InputError(f"{path}:1: a playbook is a mapping with at least name, targets "
                         f"and packages")

    def fail(where: Located | LocatedList, key: Any, message: str) -> InputError:
        return InputError(f"{path}:{where.line_of(key)}: {message}")

    def section(where: Located, key: str, keys: set[str]) -> Located:
        raw = where.get(key, None)
        if raw is None:
            return _empty(where.line_of(key))
        if not isinstance(raw, Located):
            raise fail(where, key, f"{key} is a mapping with {', '.join(sorted(keys))}")
        unknown = sorted(set(raw) - keys, key=str)
        if unknown:
            raise fail(raw, unknown[0], f"unknown {key} key {unknown[0]!r}; keys: "
                                        f"{', '.join(sorted(keys))}")
        return raw

    unknown = sorted(set(doc) - KEYS, key=str)
    if unknown:
        raise fail(doc, unknown[0], f"unknown key {unknown[0]!r}; keys: "
                                    f"{', '.join(sorted(KEYS))}")
    for key in ("name", "targets", "packages"):
        if key not in doc and not (key == "packages" and "os" in doc):
            raise fail(doc, key, f"missing key {key!r}")
    os_section = section(doc, "os", OS_KEYS) if "os" in doc else None
    targets = section(doc, "targets", TARGET_KEYS)
    if not targets.get("group") and not targets.get("pattern"):
        raise fail(doc, "targets", "targets needs a group or a pattern, e.g. "
                                   "{group: factory-a}")
    where = targets.get("where", [])
    if isinstance(where, str):
        where = [where]
    if not isinstance(where, list) or not all(isinstance(w, str) for w in where):
        raise fail(targets, "where", "targets.where is a list of selectors, e.g. ['l4t>=36']")
    strategy = section(doc, "strategy", STRATEGY_KEYS)
    values = _strategy(strategy, path)
    window = _window(section(doc, "window", WINDOW_KEYS), path) if "window" in doc else None
    health = _health_section(doc, path)
    return Playbook(
        path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        name=str(doc["name"]), description=str(doc.get("description", "")),
        packages=_packages(doc, path) if "packages" in doc or not os_section else (),
        **(_os(os_section, path) if os_section is not None else {}),
        group=_text(targets.get("group")),
        pattern=_text(targets.get("pattern")), where=tuple(where), health=health,
        window=window, analysis=_analysis_section(doc, path), **values)


def reload(path: str, sha256: str) -> Playbook:
    """The playbook a rollout started from, refused when it changed since."""
    playbook = load_playbook(Path(path))
    if playbook.sha256 != sha256:
        raise FleetError(f"{path} changed since the rollout started; put it back, or "
                         f"'fleetctl rollback' the rollout and run the new playbook",
                         exit_code=2)
    return playbook


def _empty(line: int) -> Located:
    empty = Located()
    empty.line, empty.key_lines = line, {}
    return empty


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _packages(doc: Located, path: Path) -> tuple[PackageSpec, ...]:
    raw = doc["packages"]
    if not isinstance(raw, LocatedList) or not raw:
        raise InputError(f"{path}:{doc.line_of('packages')}: packages is a list, e.g. "
                         f"[ollama, {{name: open-webui, version: 0.6.9}}]")
    specs = []
    for index, item in enumerate(raw):
        line = raw.line_of(index)
        if isinstance(item, str):
            name, _, version = item.partition(":")
            specs.append(PackageSpec(name, version or None))
            continue
        if not isinstance(item, Located) or "name" not in item:
            raise InputError(f"{path}:{line}: a package is NAME[:VERSION] or "
                             f"{{name: NAME, version: X, env: {{}}, vars: {{}}}}")
        unknown = sorted(set(item) - PACKAGE_KEYS, key=str)
        if unknown:
            raise InputError(f"{path}:{item.line_of(unknown[0])}: unknown package key "
                             f"{unknown[0]!r}; keys: {', '.join(sorted(PACKAGE_KEYS))}")
        for key in ("env", "vars"):
            if not isinstance(item.get(key, {}), dict):
                raise InputError(f"{path}:{item.line_of(key)}: {key} is a mapping of "
                                 f"NAME: value")
        secrets = item.get("secrets", [])
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise InputError(f"{path}:{item.line_of('secrets')}: secrets is a list of env "
                             f"names, e.g. [WEBUI_SECRET_KEY]")
        specs.append(PackageSpec(str(item["name"]), _text(item.get("version")),
                                 {str(k): str(v) for k, v in item.get("env", {}).items()},
                                 dict(item.get("vars", {})), tuple(secrets)))
    names = [s.name for s in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InputError(f"{path}:{raw.line}: package {duplicate!r} is listed twice")
    return tuple(specs)


def _os(raw: Located, path: Path) -> dict[str, Any]:
    from fleetctl.osupdate.paths import release, shown

    if "l4t" not in raw:
        raise InputError(f"{path}:{raw.line}: os needs l4t, the release to update to, e.g. "
                         f"{{l4t: 36.4.3}}")
    try:
        target = shown(release(str(raw["l4t"])))
    except ValueError as exc:
        raise InputError(f"{path}:{raw.line_of('l4t')}: os.l4t: {exc}") from None
    values: dict[str, Any] = {"os_target": target}
    if "reboot_timeout" in raw:
        values["reboot_timeout"] = _duration(raw, "reboot_timeout", path, "os")
    if "payload" in raw:
        if not isinstance(raw["payload"], str) or not raw["payload"]:
            raise InputError(f"{path}:{raw.line_of('payload')}: os.payload is the path of "
                             f"an OTA payload file (ota_payload_package.tar.gz)")
        values["os_payload"] = (path.parent / raw["payload"]).resolve()
    return values


def _strategy(raw: Located, path: Path) -> dict[str, Any]:
    def at(key: str) -> str:
        return f"{path}:{raw.line_of(key)}: strategy.{key}"

    values: dict[str, Any] = {}
    if "steps" in raw:
        steps = raw["steps"]
        values["steps"] = tuple(parse_steps(steps if isinstance(steps, list) else str(steps),
                                            at("steps")))
    policy = parse_policy(raw.get("max_failures", "1"), str(raw.get("failure_scope", "step")),
                          str(raw.get("unreachable", "deferred")), at("max_failures"))
    values.update(max_failures=policy.max_failures, failure_scope=policy.scope,
                  unreachable=policy.unreachable)
    if "canary" in raw:
        canary = raw["canary"]
        canary = [canary] if isinstance(canary, str) else canary
        if not isinstance(canary, list) or not all(isinstance(c, str) and c for c in canary):
            raise InputError(f"{at('canary')} is a host name or a list of host names")
        values["canary"] = tuple(canary)
    if "pause" in raw:
        pause = str(raw["pause"])
        if pause != "manual":
            _duration(raw, "pause", path, "strategy")
        values["pause"] = pause
    if "gate_timeout" in raw:
        values["gate_timeout"] = _duration(raw, "gate_timeout", path, "strategy")
    if "rollback_all" in raw:
        if not isinstance(raw["rollback_all"], bool):
            raise InputError(f"{at('rollback_all')} is true or false")
        values["rollback_all"] = raw["rollback_all"]
    if "keep" in raw:
        if not isinstance(raw["keep"], int) or isinstance(raw["keep"], bool) or raw["keep"] < 2:
            raise InputError(f"{at('keep')} is a whole number of releases, at least 2")
        values["keep"] = raw["keep"]
    return values


def _duration(raw: Located, key: str, path: Path, where: str) -> float:
    try:
        return parse_duration(raw[key])
    except ValueError:
        raise InputError(f"{path}:{raw.line_of(key)}: {where}.{key} {raw[key]!r} is not a "
                         f"duration such as 30s or 5m") from None


def _health_section(doc: Located, path: Path) -> dict[str, Located]:
    raw = doc.get("health")
    if raw is None:
        return {}
    if not isinstance(raw, Located) or not all(isinstance(v, Located) for v in raw.values()):
        raise InputError(f"{path}:{doc.line_of('health')}: health maps a package to its "
                         f"overrides, e.g. {{ollama: {{timeout: 120s}}}}")
    for name, overrides in raw.items():
        health_over(Health(), overrides, path, f"health.{name}")   # validated now, applied later
    return dict(raw)


def _analysis_section(doc: Located, path: Path) -> dict[str, Analysis | None]:
    raw = doc.get("analysis")
    if raw is None:
        return {}
    if not isinstance(raw, Located):
        raise InputError(f"{path}:{doc.line_of('analysis')}: analysis maps a package to its "
                         f"analysis (replacing the package's) or to false (health gate only)")
    for name, value in raw.items():
        if value is not False and not isinstance(value, Located):
            raise InputError(f"{path}:{raw.line_of(name)}: analysis.{name} is an analysis "
                             f"(a mapping with metrics) or false (health gate only)")
    return {str(name): None if value is False else
            parse_analysis(value, path, f"analysis.{name}") for name, value in raw.items()}


def _window(raw: Located, path: Path) -> Window:
    for key in ("days", "start", "duration"):
        if key not in raw:
            raise InputError(f"{path}:{raw.line}: window needs days, start and duration, e.g. "
                             f"{{days: [mon, tue], start: '02:00', duration: 4h}}")
    days = raw["days"]
    if isinstance(days, str):
        days = [d.strip() for d in days.split(",")]
    if not isinstance(days, list) or not days or not all(str(d).lower()[:3] in DAYS
                                                         for d in days):
        raise InputError(f"{path}:{raw.line_of('days')}: window.days is a list of "
                         f"{', '.join(DAYS)}")
    start_value = raw["start"]
    if isinstance(start_value, int) and not isinstance(start_value, bool):
        # YAML 1.1 reads an unquoted 02:00 as sexagesimal 120
        start_value = f"{start_value // 60:02d}:{start_value % 60:02d}"
    try:
        start = dt.time.fromisoformat(str(start_value))
    except ValueError:
        raise InputError(f"{path}:{raw.line_of('start')}: window.start {raw['start']!r} is "
                         f"a time of day such as '02:00' (quote it)") from None
    duration = _duration(raw, "duration", path, "window")
    if not 0 < duration <= 7 * 86400:
        raise InputError(f"{path}:{raw.line_of('duration')}: window.duration must be more "
                         f"than 0 and at most a week")
    timezone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{path}:{raw.line_of('timezone')}: window.timezone {timezone!r} is "
                         f"not a time zone such as Europe/Berlin or UTC") from None
    return Window(tuple(sorted({DAYS.index(str(d).lower()[:3]) for d in days})), start,
                  duration, timezone)
