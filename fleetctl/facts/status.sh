#!/bin/sh
# fleetctl's status probe: run by `sh -s` over one SSH channel; prints raw sections
# introduced by "@@fleetctl:<name>" lines, which fleetctl/facts/appstatus.py parses:
# the device's clock and memory, every fleetctl-deployed container, one tegrastats line.
exec 2>/dev/null
m() { printf '\n@@fleetctl:%s\n' "$1"; }
m begin; echo 1
m now; date +%s
m meminfo; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
if command -v docker >/dev/null; then
    m containers
    ids=$(docker ps -aq --filter label=io.fleetctl.package)
    [ -z "$ids" ] || docker inspect --format '{{.Name}}|{{index .Config.Labels "io.fleetctl.package"}}|{{index .Config.Labels "io.fleetctl.version"}}|{{index .Config.Labels "io.fleetctl.release"}}|{{.Config.Image}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}|{{.RestartCount}}|{{.State.StartedAt}}' $ids
fi
if command -v tegrastats >/dev/null; then
    m tegrastats; tegrastats --interval 500 | head -n 1
fi
m end; echo 1
