"""ansible-core as the oracle for fleetctl's inventory reading: one process, many questions.

Reads one JSON request per line on stdin, ``{"source": PATH, "patterns": [...]}``, and
answers one JSON line: ``{"list": <what 'ansible-inventory -i PATH --list' prints>,
"patterns": {PATTERN: [host, ...] as 'ansible PATTERN --list-hosts' lists them}}``, or
``{"error": MESSAGE}`` when ansible-core refuses the inventory. Run as a child process so
that ansible-core's process-wide state stays out of the test run.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.update(ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="True",
                  ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
                  ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_SYSTEM_WARNINGS="False",
                  ANSIBLE_NOCOLOR="True")

from ansible.cli.inventory import InventoryCLI
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager


def answer(cli: InventoryCLI, request: dict) -> dict:
    """What ansible-core makes of one inventory and some patterns."""
    cli.loader = DataLoader()
    try:
        cli.inventory = InventoryManager(loader=cli.loader, sources=[request["source"]])
        cli.vm = VariableManager(loader=cli.loader, inventory=cli.inventory)
        listing = json.loads(cli.dump(cli.json_inventory(cli._get_group("all"))))
    except AnsibleError as exc:
        return {"error": str(exc).splitlines()[0]}
    patterns = {}
    for pattern in request.get("patterns", []):
        try:
            patterns[pattern] = [h.name for h in cli.inventory.list_hosts(pattern)]
        except AnsibleError as exc:
            patterns[pattern] = {"error": str(exc).splitlines()[0]}
    return {"list": listing, "patterns": patterns}


def main() -> None:
    cli = InventoryCLI(["ansible-inventory", "-i", "localhost,", "--list"])
    cli.parse()
    for line in sys.stdin:
        print(json.dumps(answer(cli, json.loads(line)), default=str), flush=True)


if __name__ == "__main__":
    main()
