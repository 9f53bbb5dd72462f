"""One line of NVIDIA's ``tegrastats``, read into numbers.

The format moves between releases and modules (a date prefix since JetPack 5,
``GR3D_FREQ 0%@[306]`` on JetPack 5 and ``0%@76`` on the Nano, ``VDD_*`` rails on Xavier
and Orin, ``POM_5V_*`` rails without units on the Nano, temperatures named after the
module's thermal zones), so each field is found by its own pattern and a field that is
absent stays None. Memory is shared by the CPU and the GPU on Jetson: RAM is the GPU's
memory too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_GPU = re.compile(r"\bGR3D_FREQ (\d+)%")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%")
_TEMP = re.compile(r"\b([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b((?:VDD|VIN|POM)_\w+) (\d+)(?:mW)?/(\d+)(?:mW)?")
#: the rail that is the whole module's input power, by preference
_INPUT_RAILS = ("VDD_IN", "VIN_SYS_5V0", "POM_5V_IN")


@dataclass(frozen=True)
class TegraStats:
    """What one tegrastats line reports (None: not in this module's line)."""

    ram_used_mb: int
    ram_total_mb: int
    swap_used_mb: int | None
    cpu_load_percent: float | None      # mean over the cores that are on
    gpu_load_percent: int | None        # GR3D_FREQ
    emc_load_percent: int | None        # EMC_FREQ: external memory controller
    temperatures: dict[str, float]      # thermal zone -> degrees C
    power_mw: int | None                # the module's input rail, now

    @property
    def temp_max_c(self) -> float | None:
        return max(self.temperatures.values()) if self.temperatures else None

    def values(self) -> dict[str, float | None]:
        """The names an analysis' ``device`` conditions read."""
        return {"ram_used_mb": float(self.ram_used_mb),
                "ram_total_mb": float(self.ram_total_mb),
                "ram_ratio": self.ram_used_mb / self.ram_total_mb if self.ram_total_mb else None,
                "swap_used_mb": _float(self.swap_used_mb),
                "cpu_load_percent": self.cpu_load_percent,
                "gpu_load_percent": _float(self.gpu_load_percent),
                "emc_load_percent": _float(self.emc_load_percent),
                "temp_max_c": self.temp_max_c, "power_mw": _float(self.power_mw)}


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


def parse_tegrastats(line: str) -> TegraStats:
    """Read one line; ValueError when it has no ``RAM used/totalMB`` (not tegrastats)."""
    ram = _RAM.search(line)
    if not ram:
        raise ValueError(f"not a tegrastats line: {line[:80]!r}")
    swap, cpu, gpu, emc = (p.search(line) for p in (_SWAP, _CPU, _GPU, _EMC))
    loads = []
    for core in (cpu[1].split(",") if cpu else []):
        percent = core.strip().partition("%")[0]
        if percent.isdigit():
            loads.append(int(percent))
    rails = {m[1]: int(m[2]) for m in _RAIL.finditer(line)}
    power = next((rails[r] for r in _INPUT_RAILS if r in rails), None)
    return TegraStats(
        ram_used_mb=int(ram[1]), ram_total_mb=int(ram[2]),
        swap_used_mb=int(swap[1]) if swap else None,
        cpu_load_percent=sum(loads) / len(loads) if loads else None,
        gpu_load_percent=int(gpu[1]) if gpu else None,
        emc_load_percent=int(emc[1]) if emc else None,
        temperatures={m[1]: float(m[2]) for m in _TEMP.finditer(line)
                      if not m[1].startswith(("VDD", "VIN", "POM"))},
        power_mw=power)
