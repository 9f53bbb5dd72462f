#!/bin/sh
# fleetctl's probe: run by `sh -s` on a host over one SSH channel. Prints raw
# sections introduced by "@@fleetctl:<name>" lines; fleetctl/facts.py parses
# them. POSIX sh only; device-tree strings keep their NULs.
exec 2>/dev/null
m() { printf '\n@@fleetctl:%s\n' "$1"; }
m begin; echo 1
m hostname; hostname
m uname; uname -m; uname -r
m os_release; cat /etc/os-release
m nv_tegra_release; head -n 1 /etc/nv_tegra_release
m l4t_core; dpkg-query -W -f='${Version}' nvidia-l4t-core
for f in model compatible serial-number; do
    m "dt_$f"; cat "/proc/device-tree/$f" || cat "/sys/firmware/devicetree/base/$f"
done
m cuda_json; cat /usr/local/cuda/version.json
m meminfo; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
m nvpmodel; command -v nvpmodel >/dev/null && nvpmodel -q
if command -v docker >/dev/null; then
    m docker_info; info=$(docker info --format '{{json .}}' 2>&1); echo "$info"
    root=$(printf '%s' "$info" | sed -n 's/.*"DockerRootDir":"\([^"]*\)".*/\1/p')
    m docker_df; df -Pk "${root:-/var/lib/docker}"
    T='	'
    m docker_ps; docker ps -a --no-trunc --format "{{.Names}}$T{{.Image}}$T{{.State}}$T{{.Status}}\
$T{{.Label \"com.docker.compose.project\"}}$T{{.Label \"io.fleetctl.package\"}}\
$T{{.Label \"io.fleetctl.version\"}}$T{{.Label \"io.fleetctl.release\"}}"
    m docker_images
    docker images --digests --no-trunc --format "{{.Repository}}$T{{.Tag}}$T{{.Digest}}$T{{.ID}}$T{{.Size}}"
fi
m compose
for p in /usr/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins \
         /usr/local/lib/docker/cli-plugins "$HOME/.docker/cli-plugins"; do
    [ -x "$p/docker-compose" ] && echo "v2 $p/docker-compose"
done
command -v docker-compose >/dev/null && echo "v1 $(command -v docker-compose)"
m end; echo 1
