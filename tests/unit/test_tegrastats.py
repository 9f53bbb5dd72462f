"""tegrastats lines of three Jetson generations read into numbers."""

from __future__ import annotations

import pytest

from fleetctl.facts.tegrastats import parse_tegrastats

#: Orin (JetPack 6), as ../shared/design/next-facts.md quotes it, with the date prefix
#: recent releases print
ORIN = ("11-29-2026 07:40:01 RAM 2448/7620MB (lfb 3x4MB) SWAP 0/3810MB (cached 0MB) "
        "CPU [2%@729,1%@729,0%@729,0%@729,off,off] EMC_FREQ 0% GR3D_FREQ 0% cpu@47.5C "
        "soc2@46.4C soc0@46.2C gpu@46.9C tj@47.5C soc1@46.1C VDD_IN 4133mW/4133mW "
        "VDD_CPU_GPU_CV 483mW/483mW VDD_SOC 1289mW/1289mW")
#: Xavier NX (JetPack 5): GR3D_FREQ with its frequency list, APE, upper-case zones
XAVIER = ("11-29-2026 07:40:01 RAM 3120/6854MB (lfb 112x4MB) SWAP 12/3427MB (cached 0MB) "
          "CPU [11%@1190,8%@1190,off,off,9%@1190,4%@1190] EMC_FREQ 3%@1600 "
          "GR3D_FREQ 38%@[306,306] NVENC off NVDEC off APE 150 AUX@40C CPU@41.5C "
          "thermal@40.75C AO@39.5C GPU@41C PMIC@50C VDD_IN 5213mW/5120mW "
          "VDD_CPU_GPU_CV 1102mW/1080mW VDD_SOC 1430mW/1425mW")
#: Nano (R32): no date, IRAM, POM_5V_* rails without units, a PLL zone
NANO = ("RAM 1874/3964MB (lfb 227x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
        "CPU [7%@1479,2%@1479,3%@1479,1%@1479] EMC_FREQ 4%@1600 GR3D_FREQ 0%@76 APE 25 "
        "PLL@36.5C CPU@39C PMIC@100C GPU@37C AO@45C thermal@38.25C POM_5V_IN 2392/2392 "
        "POM_5V_GPU 39/39 POM_5V_CPU 399/399")


def test_an_orin_line() -> None:
    stats = parse_tegrastats(ORIN)
    assert (stats.ram_used_mb, stats.ram_total_mb, stats.swap_used_mb) == (2448, 7620, 0)
    assert stats.cpu_load_percent == pytest.approx(0.75)        # the four cores that are on
    assert (stats.gpu_load_percent, stats.emc_load_percent) == (0, 0)
    assert stats.temperatures["tj"] == 47.5 and stats.temp_max_c == 47.5
    assert stats.power_mw == 4133
    assert stats.values()["ram_ratio"] == pytest.approx(2448 / 7620)


def test_a_xavier_and_a_nano_line() -> None:
    xavier = parse_tegrastats(XAVIER)
    assert (xavier.gpu_load_percent, xavier.emc_load_percent, xavier.power_mw) == (38, 3, 5213)
    assert xavier.temp_max_c == 50 and xavier.cpu_load_percent == 8
    nano = parse_tegrastats(NANO)
    assert (nano.ram_used_mb, nano.gpu_load_percent, nano.power_mw) == (1874, 0, 2392)
    assert nano.temperatures == {"PLL": 36.5, "CPU": 39, "PMIC": 100, "GPU": 37, "AO": 45,
                                 "thermal": 38.25}


def test_what_is_not_tegrastats_is_refused() -> None:
    for line in ("", "bash: tegrastats: command not found", "RAM lots"):
        with pytest.raises(ValueError, match="not a tegrastats line"):
            parse_tegrastats(line)
    partial = parse_tegrastats("RAM 100/200MB")
    assert partial.gpu_load_percent is None and partial.values()["temp_max_c"] is None
