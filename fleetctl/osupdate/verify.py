"""Whether a host came back from its OS update as it should: on the target L4T in
``/etc/nv_tegra_release`` and in dpkg, dpkg clean, its firmware updated by the capsule
(UEFI releases), Docker up with the ``nvidia`` runtime. Pure: the facts are read by the
caller.
"""

from __future__ import annotations

from fleetctl.facts.hostfacts import HostFacts
from fleetctl.facts.osfacts import OSFacts
from fleetctl.osupdate.paths import release, shown

#: the ESRT's last_attempt_status when a capsule was not applied (NVIDIA forum t/362627)
CAPSULE_NOT_APPLIED = 6162


def update_problems(target: str, facts: HostFacts, os: OSFacts) -> list[str]:
    """What is wrong with a host that should now run L4T ``target`` (empty: all well)."""
    goal = release(target)
    problems = []
    if facts.l4t is None or release(facts.l4t) != goal:
        problems.append(f"/etc/nv_tegra_release says R{facts.l4t or '?'}, not R{shown(goal)}")
    if os.l4t_core is None or not os.l4t_core.startswith(f"{shown(goal)}-"):
        problems.append(f"dpkg has nvidia-l4t-core {os.l4t_core or '(none)'}, not "
                        f"{shown(goal)}")
    if os.dpkg_broken:
        problems.append(f"dpkg is unfinished ({os.dpkg_broken}): run 'dpkg --configure -a'")
    if goal[0] >= 35:
        if os.last_attempt_status not in (None, 0):
            meaning = " (capsule not applied)" if \
                os.last_attempt_status == CAPSULE_NOT_APPLIED else ""
            problems.append(f"the bootloader capsule failed: ESRT last_attempt_status "
                            f"{os.last_attempt_status}{meaning}, firmware still "
                            f"R{os.fw_version or '?'}; the host may not boot again: do "
                            f"not reboot it before the firmware is fixed")
        elif os.fw_version is None or release(os.fw_version) != goal:
            problems.append(f"firmware is R{os.fw_version or '?'}, not R{shown(goal)}: "
                            f"the bootloader capsule was not applied")
    if not facts.docker:
        problems.append(f"Docker does not answer ({facts.docker_error or 'not running'})")
    elif "nvidia" not in facts.runtimes:
        problems.append("Docker has no nvidia runtime (nvidia-container-toolkit)")
    return problems
