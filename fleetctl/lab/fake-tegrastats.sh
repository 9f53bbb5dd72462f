# Lab stand-in for NVIDIA's tegrastats (the lab writes FAMILY, TOTAL_MB, SWAP_MB, CORES,
# MEM and CPU above this line): one line per --interval in the format of the host's
# JetPack (orin: JetPack 6, xavier: JetPack 5, nano: R32), driven by what the host's
# containers use: RAM is the OS's share plus the containers' memory (their cgroups,
# without inactive file cache, as docker stats counts it), GR3D_FREQ is their CPU time
# over the interval (no GPU here: the nearest thing to "the app is busy"). The faults
# gpu-saturated and memory-exhausted (files in /run/fleetlab) pin GR3D at 99% and RAM
# 40 MB short of the total.
interval=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --interval) interval=$2; shift 2 ;;
        --interval=*) interval=${1#*=}; shift ;;
        *) shift ;;
    esac
done
case "$interval" in ''|*[!0-9]*) echo "tegrastats: bad --interval" >&2; exit 1 ;; esac
BASE_MB=1200

containers_mb() {
    total=0
    for d in "$MEM"/*/; do
        [ -f "$d/memory.usage_in_bytes" ] || continue
        used=$(cat "$d/memory.usage_in_bytes")
        idle=$(awk '$1 == "total_inactive_file" { print $2 }' "$d/memory.stat")
        total=$((total + used - ${idle:-0}))
    done
    echo $((total / 1048576))
}

cpu_ns() {
    total=0
    for d in "$CPU"/*/; do
        [ -f "$d/cpuacct.usage" ] && total=$((total + $(cat "$d/cpuacct.usage")))
    done
    echo "$total"
}

cores() {  # LOAD: each core's share, as "X%@MHZ" (the last two off, as on an idle Orin)
    out="" i=0
    while [ $i -lt "$CORES" ]; do
        if [ "$FAMILY" = orin ] && [ $i -ge $((CORES - 2)) ] && [ "$1" -lt 5 ]; then
            core=off
        else
            core="$1%@$2"
        fi
        out="${out:+$out,}$core"
        i=$((i + 1))
    done
    echo "$out"
}

before=$(cpu_ns)
seconds=$(awk "BEGIN { print $interval / 1000 }")
while :; do
    sleep "$seconds"
    now=$(cpu_ns)
    load=$(((now - before) / (interval * 10000)))      # ns over the interval, in % of a core
    before=$now
    [ "$load" -gt 99 ] && load=99
    used=$((BASE_MB + $(containers_mb)))
    [ -e /run/fleetlab/memory-exhausted ] && used=$((TOTAL_MB - 40))
    [ "$used" -gt "$TOTAL_MB" ] && used=$TOTAL_MB
    gpu=$load
    [ -e /run/fleetlab/gpu-saturated ] && gpu=99
    temp=$((41 + gpu / 5)) power=$((3900 + gpu * 60)) share=$((load / CORES))
    case "$FAMILY" in
        orin) printf '%s RAM %d/%dMB (lfb 3x4MB) SWAP 0/%dMB (cached 0MB) CPU [%s] EMC_FREQ 0%% GR3D_FREQ %d%% cpu@%d.5C soc2@%d.4C soc0@%d.2C gpu@%d.9C tj@%d.5C soc1@%d.1C VDD_IN %dmW/%dmW VDD_CPU_GPU_CV %dmW/%dmW VDD_SOC %dmW/%dmW\n' \
                  "$(date '+%m-%d-%Y %H:%M:%S')" "$used" "$TOTAL_MB" "$SWAP_MB" \
                  "$(cores "$share" 729)" "$gpu" "$temp" "$temp" "$temp" "$temp" "$temp" \
                  "$temp" "$power" "$power" $((power / 8)) $((power / 8)) \
                  $((power / 3)) $((power / 3)) ;;
        xavier) printf '%s RAM %d/%dMB (lfb 112x4MB) SWAP 0/%dMB (cached 0MB) CPU [%s] EMC_FREQ 3%%@1600 GR3D_FREQ %d%%@[306,306] NVENC off NVDEC off APE 150 AUX@%d.5C CPU@%dC thermal@%d.75C AO@%d.5C GPU@%dC PMIC@50C VDD_IN %dmW/%dmW VDD_CPU_GPU_CV %dmW/%dmW VDD_SOC %dmW/%dmW\n' \
                  "$(date '+%m-%d-%Y %H:%M:%S')" "$used" "$TOTAL_MB" "$SWAP_MB" \
                  "$(cores "$share" 1190)" "$gpu" "$temp" "$temp" "$temp" "$temp" "$temp" \
                  "$power" "$power" $((power / 5)) $((power / 5)) $((power / 4)) $((power / 4)) ;;
        *) printf 'RAM %d/%dMB (lfb 227x4MB) SWAP 0/%dMB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [%s] EMC_FREQ 4%%@1600 GR3D_FREQ %d%%@76 APE 25 PLL@%d.5C CPU@%dC PMIC@100C GPU@%dC AO@%dC thermal@%d.25C POM_5V_IN %d/%d POM_5V_GPU %d/%d POM_5V_CPU %d/%d\n' \
                  "$used" "$TOTAL_MB" "$SWAP_MB" "$(cores "$share" 1479)" "$gpu" "$temp" \
                  "$temp" "$temp" "$temp" "$temp" $((power / 2)) $((power / 2)) \
                  $((gpu * 20)) $((gpu * 20)) $((power / 10)) $((power / 10)) ;;
    esac
done
