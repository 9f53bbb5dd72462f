"""The command line is argument parsing and rendering over the API: no command module
reaches past :mod:`fleetctl.api`, and none imports another command module."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "fleetctl" / "cli"
#: modules under cli/ that render or run what the API returns (not commands)
HELPERS = {"common", "progress", "render", "execute"}
#: what helpers may read besides the API: the result types they render
HELPER_EXTRA = {"fleetctl", "fleetctl.rollout.journal", "fleetctl.plan"}
ALLOWED = {"fleetctl.api", "fleetctl.errors", *(f"fleetctl.cli.{h}" for h in HELPERS)}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "fleetctl"}


def test_commands_import_only_the_api_and_cli_helpers() -> None:
    for path in sorted(CLI.glob("*.py")):
        name = path.stem
        if name == "__init__":
            allowed = ALLOWED | {"fleetctl.cli"}
        elif name in HELPERS:
            allowed = ALLOWED | HELPER_EXTRA
        elif name == "lab":     # the simulated lab is a tool of its own beside the pipeline
            allowed = ALLOWED | {n for n in imports(path) if n.startswith("fleetctl.lab")} \
                | {"fleetctl.yamlfile"}
        else:
            allowed = ALLOWED
        extra = imports(path) - allowed
        assert not extra, f"cli/{path.name} imports {sorted(extra)}"


#: what each stage of the pipeline must not import: data flows one way
NEVER = {
    "inventory": {"facts.probe", "facts.audit", "catalog", "plan", "rollout", "delivery",
                  "api", "cli"},
    "facts": {"catalog", "plan", "rollout", "delivery", "api", "cli"},
    "analysis": {"inventory", "catalog", "plan", "rollout", "delivery", "api", "cli"},
    "catalog": {"plan", "rollout", "delivery", "api", "cli"},
    "delivery": {"plan", "rollout", "api", "cli"},
    "rollout": {"api", "cli"},
    "telemetry": {"plan", "delivery", "api", "cli"},
    "osupdate": {"rollout", "delivery", "api", "cli"},
}


def test_the_pipeline_imports_only_downstream() -> None:
    root = CLI.parent
    for package, banned in NEVER.items():
        for path in sorted((root / package).glob("*.py")):
            found = {name.removeprefix("fleetctl.") for name in imports(path)}
            bad = sorted(n for n in found for b in banned if n == b or n.startswith(b + "."))
            assert not bad, f"{package}/{path.name} imports {bad}"
