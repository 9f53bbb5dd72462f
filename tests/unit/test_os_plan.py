"""``fleetctl os plan`` without a device: the OS probe's answer parsed, and each host's
way to a target L4T (apt, image-based, blocked with the reason and the fix)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleetctl.catalog.imageref import PlatformImage
from fleetctl.digest import parse_digest
from fleetctl.facts.hostfacts import HostFacts
from fleetctl.facts.osfacts import OSFacts, fw_release, parse_os_facts
from fleetctl.osupdate.paths import os_path, release
from fleetctl.osupdate.payload import Payload

ORIN = """
@@fleetctl:begin
1
@@fleetctl:apt_source
deb https://repo.download.nvidia.com/jetson/common r36.4 main
deb https://repo.download.nvidia.com/jetson/t234 r36.4 main
@@fleetctl:slots
Current version: 36.4.3
Capsule update status: 0
Current bootloader slot: A
Active bootloader slot: A
num_slots: 2
slot: 0,             status: normal
slot: 1,             status: normal
@@fleetctl:unified
0
@@fleetctl:fw_version
2360323
@@fleetctl:last_attempt_status
0
@@fleetctl:root_mount
ext4 rw,relatime
@@fleetctl:root_df
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/mmcblk0p1    59659108 21020480  35583532      38% /
@@fleetctl:boot_control
TNSPEC 3767-300-0005-K.2-1-1-jetson-orin-nano-devkit-
COMPATIBLE_SPEC 3767--0005--1--jetson-orin-nano-devkit-
TEGRA_CHIPID 0x23
@@fleetctl:end
1
"""


def test_the_os_probe_s_answer() -> None:
    os = parse_os_facts(ORIN)
    assert (os.apt_release, os.apt_repos) == ("36.4", ("common", "t234"))
    assert (os.bootloader_slot, os.active_slot, os.capsule_status) == ("A", "A", 0)
    assert os.slots == {0: "normal", 1: "normal"} and os.slots_bootable
    assert (os.ab, os.fw_version, os.last_attempt_status) == ("unified A/B", "36.4.3", 0)
    assert (os.root_fstype, os.root_read_only, os.root_free_mb) == ("ext4", False, 34749)
    assert os.board_spec == "3767-300-0005-K.2-1-1-jetson-orin-nano-devkit-"
    bare = parse_os_facts("@@fleetctl:begin\n1\n@@fleetctl:fw_version\nlots\n"
                          "@@fleetctl:end\n1\n")
    assert bare == OSFacts()
    assert (fw_release("2294785"), fw_release("0"), fw_release("-1")) == ("35.4.1", None, None)


def host(l4t: str | None, soc: str = "tegra234") -> HostFacts:
    return HostFacts("h", "aarch64", "5.15", l4t=l4t, soc=soc, module_short="orin-nano")


GOOD = parse_os_facts(ORIN)
PAYLOAD = Payload(Path("ota_payload_package.tar.gz"), parse_digest("sha256:" + "a" * 64,
                                                                  "test"), 2**30,
                  ("3767-300-0005-K.2-1-1-jetson-orin-nano-devkit-",))


def path(l4t: str | None, target: str = "36.4.4", os: OSFacts = GOOD, **kwargs):
    if l4t and l4t != "36.4.3":
        os = replace(os, fw_version=l4t)
    return os_path("h", host(l4t), os, target, **kwargs)


def test_same_major_goes_over_apt_without_a_way_back() -> None:
    apt = path("36.4.3")
    assert (apt.kind, apt.reasons) == ("apt", [])
    assert "no automatic rollback" in apt.notes[0]
    assert path("36.4.4").kind == "current"


def test_r35_5_and_later_go_image_based_to_r36_with_the_old_slot_as_way_back() -> None:
    image = path("35.6.0", os=replace(GOOD, apt_release="35.6"))
    assert image.kind == "image", image.reasons
    assert image.notes == ["rollback: back to slot A and R35.6.0",
                           "needs the OTA payload for this board "
                           "(l4t_generate_ota_package.sh); pass it with --payload"]


@pytest.mark.parametrize(("l4t", "changes", "why"), [
    ("32.7.3", {}, "JetPack 4 (R32) cannot be updated over the air to JetPack 5 or 6: reflash"),
    ("35.4.1", {}, "JetPack 5 goes to 6 over the air only from R35.5.0: upgrade to R35.5 or "
                   "later first (R35.4.1 -> R35.6.0 over apt, then R35.6.0 -> R36.4.4 "
                   "image-based)"),
    ("36.4.7", {}, "R36.4.7 is newer than R36.4.4: L4T is not downgraded over the air"),
    (None, {}, "not a Jetson"),
    ("36.3.0", {"apt_release": None}, "no NVIDIA apt source"),
    ("36.3.0", {"root_free_mb": 1200}, "1,200 MB free on / (/var/cache/apt), 5,120 MB needed"),
    ("36.3.0", {"root_read_only": True}, "the root filesystem is mounted read-only"),
    ("35.6.0", {"ab": "no A/B"}, "rootfs A/B is disabled (nvbootctrl is-unified-enabled: 69)"),
    ("35.6.0", {"ab": None}, "nvbootctrl did not answer"),
    ("35.6.0", {"slots": {0: "normal", 1: "unbootable"}}, "slot 1 (unbootable) is not "
                                                          "bootable"),
    ("35.6.0", {"root_fstype": "overlay"}, "the root filesystem is an overlay"),
    ("35.6.0", {"capsule_status": 3}, "the last capsule update failed to install"),
])
def test_blocked_hosts_say_why_and_what_to_do(l4t: str | None, changes: dict, why: str) -> None:
    blocked = path(l4t, os=replace(GOOD, **changes))
    assert blocked.kind == "blocked"
    assert any(r.startswith(why) for r in blocked.reasons), blocked.reasons


def test_firmware_that_does_not_match_the_rootfs_blocks() -> None:
    stale = os_path("h", host("36.4.3"), replace(GOOD, fw_version="35.6.0",
                                                 last_attempt_status=6162), "36.4.4")
    assert stale.reasons == ["firmware R35.6.0 does not match the root filesystem's "
                             "R36.4.3: a capsule was not applied (last_attempt_status "
                             "6162); fix the firmware first"]


def test_a_payload_for_another_board_blocks() -> None:
    other = path("35.6.0", payload_specs=["3701-500-0005-K.0-1-0-jetson-agx-orin-devkit-"])
    assert other.kind == "blocked" and "is not in the payload's ota_board_specs.conf" in \
        other.reasons[0]


def test_target_releases() -> None:
    assert release("36.4") == (36, 4, 0) and release("r36.4.4") == (36, 4, 4)
    for bad in ("36", "36.x", "36.4.4.1", ""):
        with pytest.raises(ValueError, match="not an L4T release"):
            release(bad)


def test_apps_are_planned_again_for_the_new_release(tmp_path) -> None:
    """A host's ollama after the update: the same version's image for the new L4T, else
    another version with one, else the host is blocked."""
    from fleetctl.catalog.packages import load_catalog
    from fleetctl.facts.probe import ProbeResult
    from fleetctl.inventory.model import Host
    from fleetctl.osupdate.plan import plan_os

    from .test_plan_host import IMAGES, ROOT, digest, facts_running

    catalog = load_catalog(ROOT / "packages")
    r35 = replace(facts_running("0.7.0", 35), l4t="35.6.0", cuda="11.4", ubuntu="20.04")
    result = ProbeResult(Host("h", {}, [], "test"), r35)
    os = replace(GOOD, fw_version="35.6.0")
    offline = {"dustynv/ollama": IMAGES}
    without = plan_os("36.4.4", [(result, os, None)], catalog, None, offline=offline)
    assert without.entries[0].action == "blocked"       # image-based needs the payload
    assert "pass the OTA payload for this board with --payload" in without.entries[0].reason
    moved = plan_os("36.4.4", [(result, os, None)], catalog, None, offline=offline,
                    payload=PAYLOAD)
    [moves] = moved.paths
    assert (moves.kind, moves.notes[-1]) == ("image", "ollama 0.7.0 then runs "
                                                      "0.7.0-r36.4.0-cu126-22.04")
    rollout = moved.rollout_plan()      # l4t first, then the app on the new release
    assert (rollout.requests, rollout.packages) == (["l4t:36.4.4"], ["l4t", "ollama"])
    l4t, app = rollout.entries
    assert (l4t.package, l4t.action, l4t.source, l4t.current_version, l4t.version) == (
        "l4t", "upgrade", "image", "35.6.0", "36.4.4")
    assert l4t.digest == PAYLOAD.digest and app.action == "install"     # a new slot
    assert (app.package, app.tag, app.current_version) == (
        "ollama", "0.7.0-r36.4.0-cu126-22.04", None)
    only_r35 = [i for i in IMAGES if "r35" in i.tag]
    older = [*only_r35, PlatformImage("0.6.8-r36.4.0-cu126-22.04", digest(68), "amd64",
                                      "linux", 1)]
    [other] = plan_os("36.4.4", [(result, os, None)], catalog, None,
                      offline={"dustynv/ollama": older}).paths
    assert (other.kind, other.notes[-1]) == ("image", "ollama 0.7.0 has no image for "
                                             "R36.4.4: it then moves to 0.6.8 "
                                             "(0.6.8-r36.4.0-cu126-22.04)")
    blocked = plan_os("36.4.4", [(result, os, None)], catalog, None,
                      offline={"dustynv/ollama": only_r35})
    [stuck] = blocked.paths
    assert stuck.kind == "blocked", stuck.notes
    assert [(e.package, e.action) for e in blocked.entries] == [("l4t", "blocked")]
    assert stuck.reasons[0].startswith("after the update ollama would have no image for "
                                       "R36.4.4: ")
    down = ProbeResult(Host("h2", {}, [], "test"), None, "refused", "nothing listens")
    plan = plan_os("36.4.4", [(down, None, None)], catalog, None, offline=offline)
    assert plan.unreachable == {"h2": "refused: nothing listens"}


UPDATING = ORIN.replace("@@fleetctl:end", """@@fleetctl:l4t_core
36.4.3-20250107174145
@@fleetctl:dpkg_audit
The following packages are only half configured, probably due to problems
configuring them the first time.  The configuration should be retried using
dpkg --configure <package> or the configure menu option in dselect:
 nvidia-l4t-kernel    NVIDIA Kernel Package
@@fleetctl:updating
apt-staged
reboot-pending
@@fleetctl:end""")


def test_the_os_probe_s_update_state() -> None:
    os = parse_os_facts(UPDATING)
    assert (os.l4t_core, os.dpkg_broken) == ("36.4.3-20250107174145", "nvidia-l4t-kernel")
    assert os.updating == ("apt-staged", "reboot-pending")
    assert (GOOD.l4t_core, GOOD.dpkg_broken, GOOD.updating) == (None, None, ())


def orin(l4t: str = "36.4.3", **changes) -> HostFacts:
    return replace(host(l4t), **{"docker": True, "runtimes": ["nvidia", "runc"], **changes})


DONE = replace(GOOD, l4t_core="36.4.3-20250107174145")


@pytest.mark.parametrize(("facts", "os", "problem"), [
    (orin("36.3.0"), DONE, "/etc/nv_tegra_release says R36.3.0, not R36.4.3"),
    (orin(), replace(DONE, l4t_core="36.3.0-20240506173421"),
     "dpkg has nvidia-l4t-core 36.3.0-20240506173421, not 36.4.3"),
    (orin(), replace(DONE, dpkg_broken="nvidia-l4t-kernel"),
     "dpkg is unfinished (nvidia-l4t-kernel): run 'dpkg --configure -a'"),
    (orin(), replace(DONE, fw_version="36.3.0", last_attempt_status=6162),
     "the bootloader capsule failed: ESRT last_attempt_status 6162 (capsule not applied), "
     "firmware still R36.3.0; the host may not boot again: do not reboot it before the "
     "firmware is fixed"),
    (orin(), replace(DONE, fw_version="36.3.0"),
     "firmware is R36.3.0, not R36.4.3: the bootloader capsule was not applied"),
    (orin(docker=False, docker_error="Cannot connect to the Docker daemon"), DONE,
     "Docker does not answer (Cannot connect to the Docker daemon)"),
    (orin(runtimes=["runc"]), DONE, "Docker has no nvidia runtime (nvidia-container-toolkit)"),
])
def test_a_host_back_from_its_update_is_checked(facts, os, problem: str) -> None:
    from fleetctl.osupdate.verify import update_problems

    assert update_problems("36.4.3", orin(), DONE) == []
    assert update_problems("36.4.3", facts, os) == [problem]


def test_audit_names_an_unfinished_or_inconsistent_os() -> None:
    from fleetctl.facts.audit import os_columns, os_problems

    assert os_problems(orin(), DONE) == []
    half = replace(parse_os_facts(UPDATING), fw_version="36.3.0", last_attempt_status=6162)
    assert os_problems(orin(), half) == [
        "mid-update: NVIDIA's apt source moved by an unfinished fleetctl os upgrade",
        "mid-update: installed, reboot pending",
        "dpkg unfinished: nvidia-l4t-kernel (dpkg --audit)",
        "capsule failed (last_attempt_status 6162)",
        "firmware R36.3.0 but rootfs R36.4.3"]
    assert os_problems(orin("36.3.0"), replace(DONE, fw_version="36.3.0")) == [
        "dpkg nvidia-l4t-core 36.4.3-20250107174145 but nv_tegra_release R36.3.0"]
    assert os_columns(orin(), replace(DONE, active_slot="B")) == {
        "slot": "A (next B)", "firmware": "36.4.3", "capsule_status": 0,
        "l4t_core": "36.4.3-20250107174145", "os_state": "ok"}


def test_the_apt_pin_holds_every_l4t_package_at_the_target_alone() -> None:
    import re

    from fleetctl.device import apt_pin

    pin = apt_pin("36.4.3")
    assert pin.startswith("/") and pin.endswith("/")
    held = re.compile(pin[1:-1])
    assert held.search("36.4.3-20250107174145")
    assert held.search("5.15.148-tegra-36.4.3-20250107174145")
    for other in ("36.4.30-20250107174145", "136.4.3-20250107174145", "36.4.4-2025",
                  "36x4x3-2025"):
        assert not held.search(other), other


def test_a_playbook_s_packages_are_deployed_after_the_update_as_asked() -> None:
    from fleetctl.catalog.packages import Request, load_catalog
    from fleetctl.facts.probe import ProbeResult
    from fleetctl.inventory.model import Host
    from fleetctl.osupdate.plan import plan_os

    from .test_plan_host import IMAGES, ROOT, facts_running

    catalog = load_catalog(ROOT / "packages")
    bare = replace(facts_running("0.7.0", 35), l4t="35.6.0", cuda="11.4", ubuntu="20.04",
                   containers=[])
    result = ProbeResult(Host("h", {}, [], "test"), bare)
    os = replace(GOOD, fw_version="35.6.0")
    offline = {"dustynv/ollama": IMAGES}
    plan = plan_os("36.4.4", [(result, os, None)], catalog, None, offline=offline,
                   requests=[Request("ollama", "0.7.0")], payload=PAYLOAD)
    assert [(e.package, e.action, e.tag) for e in plan.entries] == [
        ("l4t", "upgrade", None), ("ollama", "install", "0.7.0-r36.4.0-cu126-22.04")]
    assert plan.paths[0].notes[-1] == "ollama 0.7.0 then runs 0.7.0-r36.4.0-cu126-22.04"
    stuck = plan_os("36.4.4", [(result, os, None)], catalog, None, offline=offline,
                    requests=[Request("ollama", "9.9.9")], payload=PAYLOAD)
    assert stuck.paths[0].kind == "blocked"
    assert stuck.paths[0].reasons[0].startswith("after the update ollama would have no "
                                                "image for R36.4.4: ")


def test_a_release_that_does_not_support_the_module_blocks() -> None:
    xavier = replace(host("35.6.0", "tegra194"), module_short="xavier-nx")
    blocked = os_path("h", xavier, replace(GOOD, fw_version="35.6.0"), "36.4.3")
    assert (blocked.kind, blocked.reasons) == (
        "blocked", ["R36 does not support xavier-nx: stay on R35"])
    older = replace(xavier, l4t="35.4.1")
    assert os_path("h", older, replace(GOOD, fw_version="35.4.1"), "35.6.0").kind == "apt"
    unknown = os_path("h", host("36.3.0", soc=None), replace(GOOD, fw_version="36.3.0"),
                      "36.4.3")
    assert unknown.kind == "blocked" and "module could not be read" in unknown.reasons[0]


def test_a_payload_is_hashed_and_read_or_refused(tmp_path: Path) -> None:
    import hashlib
    import io
    import tarfile

    from fleetctl.errors import InputError
    from fleetctl.osupdate.payload import MAX_SPECS, read_payload

    def payload(name: str, members: dict[str, bytes]) -> Path:
        path = tmp_path / name
        with tarfile.open(path, "w:gz") as archive:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return path

    good = payload("good.tar.gz", {"ota_board_specs.conf": b"# boards\nA-1\n\nB-2\n",
                                    "rootfs/etc/x": b"x"})
    read = read_payload(good)
    assert read.board_specs == ("A-1", "B-2")
    assert read.digest == f"sha256:{hashlib.sha256(good.read_bytes()).hexdigest()}"
    (tmp_path / "plain.txt").write_text("not a tar")
    for bad, why in ((tmp_path / "plain.txt", "not a gzipped tar"),
                     (payload("nospecs.tar.gz", {"rootfs/etc/x": b"x"}),
                      "no ota_board_specs.conf in it"),
                     (payload("huge.tar.gz", {"ota_board_specs.conf": b"A" * (MAX_SPECS + 1)}),
                      "is larger than"),
                     (tmp_path / "missing.tar.gz", "cannot read")):
        with pytest.raises(InputError, match=why):
            read_payload(bad)
