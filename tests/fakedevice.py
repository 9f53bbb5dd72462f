"""An in-memory Jetson for testing the rollout engine without SSH: it answers the device
steps of ``fleetctl/device.sh`` (lock, stage, activate, containers, commit, releases,
switch, remove, unlock; with a :class:`FakeOS`, the L4T update steps and the OS probe)
and the probe from a state it keeps, and can be told to fail a step, drop its link
after a step, never get healthy on a release, be unreachable, or (OS) hang in a
reboot or not apply its firmware capsule.

The engine talks to it exactly as to a real connection (``run`` with a script on
stdin, ``http_get`` for health checks); nothing of the engine is replaced.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from fleetctl.device import script_for
from fleetctl.facts.hostfacts import PROBE_SCRIPT
from fleetctl.facts.osfacts import OS_SCRIPT
from fleetctl.inventory.targets import Target
from fleetctl.ssh import HTTPAnswer, Result, SSHFailure

SAMPLE = (Path(__file__).parent / "unit" / "probe_outputs" / "lab-orin-nano-jp62.txt").read_text()


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Running:
    release: str
    image: str
    version: str
    restarts: int = 0


@dataclass
class FakeOS:
    """A Jetson's L4T as the OS steps see it: release, firmware, apt stage, reboots."""

    l4t: str = "36.3.0"
    firmware: str = "36.3.0"
    capsule: str | None = None          # staged by the install, applied at the next boot
    last_attempt_status: int = 0
    staged: str | None = None           # the release the apt stage downloaded
    rebooting: bool = False
    boot_connects: int = 2              # connects refused while it boots
    down_for: int = 0
    hangs: bool = False                 # a reboot never comes back
    capsule_fails: bool = False         # the firmware ignores the capsule (6162)
    reboots: int = 0

    def boot(self) -> None:
        if self.capsule:
            if self.capsule_fails:
                self.last_attempt_status = 6162
            else:
                self.firmware, self.last_attempt_status = self.capsule, 0
            self.capsule = None
        self.rebooting = False
        self.reboots += 1


class _StepRefused(Exception):
    """A step the device script would refuse (non-zero exit, the reason on stderr)."""


@dataclass
class FakeDevice:
    """One host with one package's releases."""

    name: str
    package: str = "app"
    images: set[str] = field(default_factory=set)          # name@digest on the host
    releases: dict[str, tuple[str, str]] = field(default_factory=dict)  # rel: (image, version)
    current: str | None = None
    previous: str | None = None
    running: Running | None = None
    #: digests whose release never answers its health check, or crash-loops
    unhealthy: set[str] = field(default_factory=set)
    crashing: set[str] = field(default_factory=set)
    #: seconds a request to the app takes, by digest (an analysis' probe requests)
    latency: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    versions: dict[str, str] = field(default_factory=dict)     # digest -> version label
    fail_step: dict[str, str] = field(default_factory=dict)   # step -> error it prints
    drop_after: str | None = None       # the link drops once this step has run
    unreachable: bool = False
    dropped: bool = False
    steps: list[str] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)
    lock: str | None = None
    locks: dict[str, str] = field(default_factory=dict)     # other packages' (l4t)
    os: FakeOS | None = None

    # -- what the engine calls --------------------------------------------------------------

    @property
    def target(self) -> Target:
        return Target(self.name, f"fake-{self.name}")

    def run(self, script: str, *, command: str = "sh -s",
            command_timeout: float = 60.0) -> Result:
        self._alive()
        if script == PROBE_SCRIPT:
            return Result(self._probe(), "", 0)
        if script == OS_SCRIPT and self.os:
            return Result(self._os_probe(), "", 0)
        step = script.rstrip().rsplit("\n", 1)[-1].removeprefix("do_")
        values = dict(word.split("=", 1) for word in
                      shlex.split(script[len(script_for(step)):].rsplit("\n", 2)[0]))
        self.steps.append(step)
        if step in self.fail_step:
            return Result("", self.fail_step[step] + "\n", 1)
        try:
            out = getattr(self, f"_{step}")(values)
        except _StepRefused as refused:
            return Result("", f"{refused}\n", 3)
        if self.drop_after == step:
            self.dropped = True
        return Result(out, "", 0)

    def http_get(self, url: str, timeout: float = 5.0) -> tuple[int, str]:
        self._alive()
        healthy = self.running and self._digest(self.running.image) not in self.unhealthy
        return (200, "{}") if healthy else (0, "connection refused")

    def http_request(self, method: str, url: str, **_: object) -> HTTPAnswer:
        status, body = self.http_get(url)
        self.requests += 1
        digest = self._digest(self.running.image) if self.running else ""
        return HTTPAnswer(status, body.encode(), self.latency.get(digest, 0.05))

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def connect(self) -> FakeDevice:
        if self.unreachable:
            raise SSHFailure("timeout", f"no answer from {self.name}")
        if self.os and self.os.rebooting:
            if self.os.hangs or self.os.down_for > 0:
                self.os.down_for -= 1
                raise SSHFailure("connection refused", f"{self.name} is booting")
            self.os.boot()
        self.dropped = False
        return self

    # -- the device steps ---------------------------------------------------------------------

    def _lock(self, v: dict[str, str]) -> str:
        """As device.sh: the holder may take it again, --break-lock takes it over."""
        if v["P"] == "l4t" and self.os:
            if self.locks.get("l4t", v["ID"]) != v["ID"]:
                raise _StepRefused(f"device lock held by rollout={self.locks['l4t']}")
            self.locks["l4t"] = v["ID"]
            return "acquired\n"
        if v["P"] != self.package:
            raise AssertionError(f"lock of package {v['P']!r} on a device of {self.package!r}")
        if self.lock is None or self.lock == v["ID"]:
            self.lock = v["ID"]
            return "acquired\n"
        if v["BREAK"] == "1":
            holder, self.lock = self.lock, v["ID"]
            return f"broke rollout={holder} owner=someone\n"
        raise _StepRefused(f"device lock held by rollout={self.lock} owner=someone; pass "
                           f"--break-lock if that rollout is dead")

    def _unlock(self, v: dict[str, str]) -> str:
        self.audit.append(v["LINE"])
        if v["P"] == "l4t":
            self.locks.pop("l4t", None)
            return ""
        if self.lock == v["ID"]:
            self.lock = None
        return ""

    def _stage(self, v: dict[str, str]) -> str:
        self.releases[v["REL"]] = (v["IMAGE"], "")
        if v["IMAGE"] in self.images:
            return "present\n"
        self.images.add(v["IMAGE"])
        return "pulled\n"

    def _activate(self, v: dict[str, str]) -> str:
        image, _ = self.releases[v["REL"]]
        self.running = Running(v["REL"], image, self._version(v["REL"]),
                               restarts=2 if self._digest(image) in self.crashing else 0)
        return ""

    def _containers(self, v: dict[str, str]) -> str:
        if self.running is None:
            return ""
        state = "exited" if self.running.restarts >= 2 else "running"
        return (f"/{self.package}-1|{state}|none|{self.running.restarts}|"
                f"{self.running.release}\n")

    def _stats(self, v: dict[str, str]) -> str:
        return f"{self.package}-1|20MiB / 7.4GiB|1.5%\n" if self.running else ""

    def _commit(self, v: dict[str, str]) -> str:
        if self.current and self.current != v["REL"]:
            self.previous = self.current
        self.current = v["REL"]
        return f"previous={self.previous or ''}\n"

    def _releases(self, v: dict[str, str]) -> str:
        lines = [f"current={self.current or ''}", f"previous={self.previous or ''}"]
        lines += [f"release={rel} {image}" for rel, (image, _) in self.releases.items()]
        return "\n".join(lines) + "\n"

    def _switch(self, v: dict[str, str]) -> str:
        image, _ = self.releases[v["REL"]]
        self.running = Running(v["REL"], image, self._version(v["REL"]))
        if v["CURRENT"] == "1":
            if self.current and self.current != v["REL"]:
                self.previous = self.current
            self.current = v["REL"]
        return ""

    def _remove(self, v: dict[str, str]) -> str:
        self.running = None
        if v["CURRENT"] == "1":
            self.current = None
        return ""

    def _os_stage_apt(self, v: dict[str, str]) -> str:
        assert self.os and v["DIST"] == "r" + ".".join(v["TARGET"].split(".")[:2])
        self.os.staged = v["TARGET"]
        return f"staged {v['TARGET']}-20250108014937\n"

    def _os_unstage_apt(self, v: dict[str, str]) -> str:
        assert self.os
        self.os.staged = None
        return ""

    def _os_install_apt(self, v: dict[str, str]) -> str:
        assert self.os and self.os.staged == v["TARGET"], "install before stage"
        self.os.l4t = self.os.capsule = v["TARGET"]
        self.os.staged = None
        return f"installed {v['TARGET']}-20250108014937\n"

    def _os_reboot(self, v: dict[str, str]) -> str:
        assert self.os
        self.os.rebooting, self.os.down_for = True, self.os.boot_connects
        self.dropped = True
        return "rebooting\n"

    def _os_booted(self, v: dict[str, str]) -> str:
        assert self.os
        return "pending\n" if self.os.rebooting else "booted\n"

    # -- helpers ------------------------------------------------------------------------------

    def install(self, release: str, image: str, version: str) -> None:
        """Make the host run ``image`` as committed release ``release`` already."""
        self.images.add(image)
        self.releases[release] = (image, version)
        self.current = release
        self.running = Running(release, image, version)

    def _alive(self) -> None:
        if self.dropped:
            raise SSHFailure("ssh failed", f"{self.name}: the connection dropped")

    @staticmethod
    def _digest(image: str) -> str:
        return image.rpartition("@")[2]

    def _version(self, release: str) -> str:
        return self.releases[release][1] or self.versions.get(
            self._digest(self.releases[release][0]), "")

    def _probe(self) -> str:
        ps, images = "", ""
        if self.running:
            r = self.running
            state = "exited" if r.restarts >= 2 else "running"
            ps = (f"{self.package}-1\t{r.image}\t{state}\tUp 1 minute\t{self.package}\t"
                  f"{self.package}\t{r.version}\t{r.release}\n")
        for image in sorted(self.images):
            name, _, digest = image.partition("@")
            images += f"{name}\t<none>\t{digest}\tsha256:{'0' * 64}\t1MB\n"
        sample = SAMPLE
        if self.os:
            major, minor, revision = self.os.l4t.split(".")
            sample = sample.replace("# R36 (release), REVISION: 4.3",
                                    f"# R{major} (release), REVISION: {minor}.{revision}")
            sample = sample.replace("36.4.3-20250108014937", f"{self.os.l4t}-20250108014937")
        return (sample.replace("@@fleetctl:docker_ps\n", f"@@fleetctl:docker_ps\n{ps}")
                .replace("@@fleetctl:docker_images\n", f"@@fleetctl:docker_images\n{images}")
                .replace("jetson-a1", self.name))

    def _os_probe(self) -> str:
        """What ``os.sh`` prints on an Orin Nano with rootfs A/B, from the OS state."""
        assert self.os
        major, minor, revision = (int(p) for p in self.os.firmware.split("."))
        dist = "r" + ".".join((self.os.staged or self.os.l4t).split(".")[:2])
        sections = {
            "begin": "1",
            "apt_source": f"deb https://repo.download.nvidia.com/jetson/common {dist} main\n"
                          f"deb https://repo.download.nvidia.com/jetson/t234 {dist} main",
            "slots": f"Current version: {self.os.firmware}\nCapsule update status: 0\n"
                     "Current bootloader slot: A\nActive bootloader slot: A\nnum_slots: 2\n"
                     "slot: 0,             status: normal\nslot: 1,             status: normal",
            "unified": "0",
            "fw_version": str((major << 16) | (minor << 8) | revision),
            "last_attempt_status": str(self.os.last_attempt_status),
            "root_mount": "ext4 rw,relatime",
            "root_df": "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                       "/dev/nvme0n1p1 121000000 20000000 95000000 18% /",
            "boot_control": "TNSPEC 3767-300-0005-K.2-1-1-jetson-orin-nano-devkit-",
            "l4t_core": f"{self.os.l4t}-20250108014937",
            "dpkg_audit": "",
            "updating": "apt-staged" if self.os.staged else "",
            "end": "1",
        }
        return "".join(f"\n@@fleetctl:{name}\n{text}\n" for name, text in sections.items())
